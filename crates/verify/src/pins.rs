//! The pinned upstream schema files and the verify-then-store step of
//! `cargo xtask schemas fetch`.
//!
//! Every file is named by repository, commit and path, and by its git blob SHA-1, so a
//! download is accepted only if it is byte-for-byte the pinned upstream file. The verify crate
//! does no networking: `xtask` downloads (with `curl`) and hands the bytes to
//! [`store_verified`]. Files are laid out like `../shared/schemas`: `<folder>/<file>`.
//!
//! Facts from `../shared/schemas/SOURCES.yaml`. For the Envoy Gateway and Gateway API files,
//! which SOURCES.yaml records as byte-exact copies without listing blob ids, the ids are those
//! of the shared copies (`git hash-object`), equal to upstream's at the pinned commit.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

/// Where pinned files are downloaded from unless overridden (tests use a loopback server).
pub const DEFAULT_BASE_URL: &str = "https://raw.githubusercontent.com";

/// One upstream file of the schema set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinnedFile {
    /// Folder in the schema set, e.g. `ai-gateway-v0.4.0`.
    pub folder: &'static str,
    /// File name in the folder.
    pub file: &'static str,
    /// `owner/name` on GitHub.
    pub repo: &'static str,
    /// The release the file belongs to (documentation; downloads use `commit`).
    pub tag: &'static str,
    /// The commit the file is taken from.
    pub commit: &'static str,
    /// Path in the upstream repository at `commit`.
    pub path: &'static str,
    /// Git blob SHA-1 of the file (`git hash-object`).
    pub blob: &'static str,
}

impl PinnedFile {
    /// `<base>/<repo>/<commit>/<path>` (the raw.githubusercontent.com layout).
    pub fn url(&self, base: &str) -> String {
        format!(
            "{}/{}/{}/{}",
            base.trim_end_matches('/'),
            self.repo,
            self.commit,
            self.path
        )
    }

    /// `<folder>/<file>` inside a schema directory.
    pub fn relative_path(&self) -> PathBuf {
        Path::new(self.folder).join(self.file)
    }
}

const AIGW: &str = "envoyproxy/ai-gateway";
// renovate: datasource=github-tags depName=envoyproxy/ai-gateway (update commit and blobs too)
const AIGW_TAG: &str = "v0.4.0";
const AIGW_COMMIT: &str = "ad5f75ee5cc7f0adc5bc9702d9ada3ad97a63612";
const EG: &str = "envoyproxy/gateway";
// renovate: datasource=github-tags depName=envoyproxy/gateway (update commit and blobs too)
const EG_TAG: &str = "v1.6.7";
const EG_COMMIT: &str = "bdb5efd61007dde496621ef0238a3b3bb81a92fb";
const SOURCE_CTRL_COMMIT: &str = "e9faef49c4f039ef57d58a3edfa481a3a25a5487";
const KUSTOMIZE_CTRL_COMMIT: &str = "b74fb3e4106f8b95f2d9ac8b9565a29067b9d5d4";
const HELM_CTRL_COMMIT: &str = "e99b6c7f141db0eb134214b8f8c873943076ace5";
const NOTIFICATION_CTRL_COMMIT: &str = "f98e1eb5aa97adbdbe33018d4b9dd1e47763fad0";
const CERT_MANAGER_COMMIT: &str = "24e33194fb39488eff2bbf10c6dc640f407cad44";
const EXTERNAL_DNS_COMMIT: &str = "994f908d4abdfe5fbf38f2f61613ed570432e43a";
const KUBECTL_VALIDATE_COMMIT: &str = "9431c46daf3fdcbdcc480134767eafdd990f8fc5";

macro_rules! pin {
    ($folder:expr, $file:expr, $repo:expr, $tag:expr, $commit:expr, $path:expr, $blob:expr) => {
        $crate::pins::PinnedFile {
            folder: $folder,
            file: $file,
            repo: $repo,
            tag: $tag,
            commit: $commit,
            path: $path,
            blob: $blob,
        }
    };
}

// The chart values schemas (`helm/charts.rs`) are pinned with the same macro.
pub(crate) use pin;

/// Every file of the pinned schema set.
pub const PINS: &[PinnedFile] = &[
    // Envoy AI Gateway v0.4.0: the CRD chart's templates (plain CRDs).
    pin!(
        "ai-gateway-v0.4.0",
        "aigateway.envoyproxy.io_aigatewayroutes.yaml",
        AIGW,
        AIGW_TAG,
        AIGW_COMMIT,
        "manifests/charts/ai-gateway-crds-helm/templates/aigateway.envoyproxy.io_aigatewayroutes.yaml",
        "e6b3585323bc841ef6053f1200ebdbb25f3a058f"
    ),
    pin!(
        "ai-gateway-v0.4.0",
        "aigateway.envoyproxy.io_aiservicebackends.yaml",
        AIGW,
        AIGW_TAG,
        AIGW_COMMIT,
        "manifests/charts/ai-gateway-crds-helm/templates/aigateway.envoyproxy.io_aiservicebackends.yaml",
        "863f43086201ddeaea24c1f344ededdf05a818fe"
    ),
    pin!(
        "ai-gateway-v0.4.0",
        "aigateway.envoyproxy.io_backendsecuritypolicies.yaml",
        AIGW,
        AIGW_TAG,
        AIGW_COMMIT,
        "manifests/charts/ai-gateway-crds-helm/templates/aigateway.envoyproxy.io_backendsecuritypolicies.yaml",
        "0294b3a57e033ee77f73f820a2dd6fbaf98cc7a3"
    ),
    pin!(
        "ai-gateway-v0.4.0",
        "aigateway.envoyproxy.io_mcproutes.yaml",
        AIGW,
        AIGW_TAG,
        AIGW_COMMIT,
        "manifests/charts/ai-gateway-crds-helm/templates/aigateway.envoyproxy.io_mcproutes.yaml",
        "8ad9304e579346e8163a4334ea074b1f66205352"
    ),
    // Envoy Gateway v1.6.7: its own CRDs.
    pin!(
        "envoy-gateway-v1.6.7",
        "gateway.envoyproxy.io_backends.yaml",
        EG,
        EG_TAG,
        EG_COMMIT,
        "charts/gateway-helm/crds/generated/gateway.envoyproxy.io_backends.yaml",
        "d71a173478da62f1d93c72ac8301c828afb6f462"
    ),
    pin!(
        "envoy-gateway-v1.6.7",
        "gateway.envoyproxy.io_backendtrafficpolicies.yaml",
        EG,
        EG_TAG,
        EG_COMMIT,
        "charts/gateway-helm/crds/generated/gateway.envoyproxy.io_backendtrafficpolicies.yaml",
        "f0fa3b569ce3ef19cab212eaef3766827a6db591"
    ),
    pin!(
        "envoy-gateway-v1.6.7",
        "gateway.envoyproxy.io_clienttrafficpolicies.yaml",
        EG,
        EG_TAG,
        EG_COMMIT,
        "charts/gateway-helm/crds/generated/gateway.envoyproxy.io_clienttrafficpolicies.yaml",
        "c9ae7a9829bc456be03aa3dd083a50b44f400b4c"
    ),
    pin!(
        "envoy-gateway-v1.6.7",
        "gateway.envoyproxy.io_envoyextensionpolicies.yaml",
        EG,
        EG_TAG,
        EG_COMMIT,
        "charts/gateway-helm/crds/generated/gateway.envoyproxy.io_envoyextensionpolicies.yaml",
        "1447f8ca6bb79f58750dc0bf2e3cdc3b35cea87e"
    ),
    pin!(
        "envoy-gateway-v1.6.7",
        "gateway.envoyproxy.io_envoypatchpolicies.yaml",
        EG,
        EG_TAG,
        EG_COMMIT,
        "charts/gateway-helm/crds/generated/gateway.envoyproxy.io_envoypatchpolicies.yaml",
        "74c91dceb69babf3e89eaf40d31560a4713ec2a4"
    ),
    pin!(
        "envoy-gateway-v1.6.7",
        "gateway.envoyproxy.io_envoyproxies.yaml",
        EG,
        EG_TAG,
        EG_COMMIT,
        "charts/gateway-helm/crds/generated/gateway.envoyproxy.io_envoyproxies.yaml",
        "59dec2e9c862fa05e2207fe770b5456786aeb936"
    ),
    pin!(
        "envoy-gateway-v1.6.7",
        "gateway.envoyproxy.io_httproutefilters.yaml",
        EG,
        EG_TAG,
        EG_COMMIT,
        "charts/gateway-helm/crds/generated/gateway.envoyproxy.io_httproutefilters.yaml",
        "7a29cddaed8ffb6d8e2d9fc4a124086d3cdecb1e"
    ),
    pin!(
        "envoy-gateway-v1.6.7",
        "gateway.envoyproxy.io_securitypolicies.yaml",
        EG,
        EG_TAG,
        EG_COMMIT,
        "charts/gateway-helm/crds/generated/gateway.envoyproxy.io_securitypolicies.yaml",
        "6f0a7e170a7010293a10c8eee52c060973102844"
    ),
    // Gateway API v1.4.1 (experimental channel), as bundled by Envoy Gateway v1.6.7.
    pin!(
        "gateway-api-v1.4.1-experimental",
        "gatewayapi-crds.yaml",
        EG,
        EG_TAG,
        EG_COMMIT,
        "charts/gateway-helm/crds/gatewayapi-crds.yaml",
        "ee7eb803a77beb0f55131f9d5bd97bdba9e5501f"
    ),
    // Flux v2.8.8: the controller CRDs at the tags flux2 pins.
    pin!(
        "flux-v2.8.8",
        "source.toolkit.fluxcd.io_gitrepositories.yaml",
        "fluxcd/source-controller",
        "v1.8.5",
        SOURCE_CTRL_COMMIT,
        "config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml",
        "7e2554252fcb1c45e24b30d8b46f9820b1b8e4ff"
    ),
    pin!(
        "flux-v2.8.8",
        "source.toolkit.fluxcd.io_helmrepositories.yaml",
        "fluxcd/source-controller",
        "v1.8.5",
        SOURCE_CTRL_COMMIT,
        "config/crd/bases/source.toolkit.fluxcd.io_helmrepositories.yaml",
        "c93090a5cc68ec113389595152880da0e6981164"
    ),
    pin!(
        "flux-v2.8.8",
        "source.toolkit.fluxcd.io_ocirepositories.yaml",
        "fluxcd/source-controller",
        "v1.8.5",
        SOURCE_CTRL_COMMIT,
        "config/crd/bases/source.toolkit.fluxcd.io_ocirepositories.yaml",
        "f3a57d1b4231a26a989cb3990b8b5c0144e3f171"
    ),
    pin!(
        "flux-v2.8.8",
        "kustomize.toolkit.fluxcd.io_kustomizations.yaml",
        "fluxcd/kustomize-controller",
        "v1.8.5",
        KUSTOMIZE_CTRL_COMMIT,
        "config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml",
        "ceda2cb44539a13ccff6b1d2ede9a83bb414be7a"
    ),
    pin!(
        "flux-v2.8.8",
        "helm.toolkit.fluxcd.io_helmreleases.yaml",
        "fluxcd/helm-controller",
        "v1.5.5",
        HELM_CTRL_COMMIT,
        "config/crd/bases/helm.toolkit.fluxcd.io_helmreleases.yaml",
        "03d16ab316369a388c4dbfe8ceda8d966a423145"
    ),
    pin!(
        "flux-v2.8.8",
        "notification.toolkit.fluxcd.io_receivers.yaml",
        "fluxcd/notification-controller",
        "v1.8.4",
        NOTIFICATION_CTRL_COMMIT,
        "config/crd/bases/notification.toolkit.fluxcd.io_receivers.yaml",
        "2114e2d89e7bbadadef9e523b47cff0fbfe98c8e"
    ),
    // cert-manager v1.21.1.
    pin!(
        "cert-manager-v1.21.1",
        "cert-manager.io_certificates.yaml",
        "cert-manager/cert-manager",
        "v1.21.1",
        CERT_MANAGER_COMMIT,
        "deploy/crds/cert-manager.io_certificates.yaml",
        "1eb46fbeed2127650fe4ec06ddc7289163f75e3b"
    ),
    pin!(
        "cert-manager-v1.21.1",
        "cert-manager.io_clusterissuers.yaml",
        "cert-manager/cert-manager",
        "v1.21.1",
        CERT_MANAGER_COMMIT,
        "deploy/crds/cert-manager.io_clusterissuers.yaml",
        "f24cab2d55ebe37a8c000d10d7f9de19636027f9"
    ),
    pin!(
        "cert-manager-v1.21.1",
        "cert-manager.io_issuers.yaml",
        "cert-manager/cert-manager",
        "v1.21.1",
        CERT_MANAGER_COMMIT,
        "deploy/crds/cert-manager.io_issuers.yaml",
        "bfa8262b5628e1d8ea7cc398cf1ad321a2bedc62"
    ),
    // external-dns v0.22.0.
    pin!(
        "external-dns-v0.22.0",
        "dnsendpoints.externaldns.k8s.io.yaml",
        "kubernetes-sigs/external-dns",
        "v0.22.0",
        EXTERNAL_DNS_COMMIT,
        "config/crd/standard/dnsendpoints.externaldns.k8s.io.yaml",
        "f0aadac0f930792d62929006c83ae822f27afbec"
    ),
    // Kubernetes 1.34 built-in OpenAPI v3, as vendored by kubectl-validate.
    pin!(
        "kubernetes-release-1.34",
        "api__v1_openapi.json",
        "kubernetes-sigs/kubectl-validate",
        "main",
        KUBECTL_VALIDATE_COMMIT,
        "pkg/openapiclient/builtins/1.34/api/v1.json",
        "e97c10daeafabbc388a32f668dfed59a05993901"
    ),
    pin!(
        "kubernetes-release-1.34",
        "apis__apps__v1_openapi.json",
        "kubernetes-sigs/kubectl-validate",
        "main",
        KUBECTL_VALIDATE_COMMIT,
        "pkg/openapiclient/builtins/1.34/apis/apps/v1.json",
        "4224213dd3981ccd01f12a14999e663a166642be"
    ),
];

/// Every pinned file `schemas fetch` stores: the CRDs and OpenAPI documents of [`PINS`], then
/// the chart values schemas and talhelper's schema (see the `helm` module).
pub fn all() -> impl Iterator<Item = &'static PinnedFile> {
    PINS.iter().chain(crate::helm::pinned_files())
}

/// The state of each of `pins` under `dir`.
pub fn status_of<'p>(
    dir: &Path,
    pins: impl Iterator<Item = &'p PinnedFile>,
) -> Vec<(&'p PinnedFile, FileStatus)> {
    pins.map(|pin| (pin, file_status(dir, pin))).collect()
}

/// The largest pinned file read (the largest is about 2 MB).
const MAX_PINNED_FILE: u64 = 16 << 20;

fn file_status(dir: &Path, pin: &PinnedFile) -> FileStatus {
    match read_pinned(dir, pin, MAX_PINNED_FILE) {
        Ok(_) => FileStatus::Ok,
        Err(status) => status,
    }
}

/// Git's blob id of some bytes: SHA-1 of `blob <len>\0<bytes>`, in hex.
pub fn git_blob_sha1(bytes: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a download was not stored.
#[derive(Debug)]
pub enum PinError {
    /// The bytes are not the pinned file.
    Mismatch {
        file: PathBuf,
        expected: &'static str,
        actual: String,
    },
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinError::Mismatch {
                file,
                expected,
                actual,
            } => write!(
                f,
                "{} does not match its pin: git blob {actual}, expected {expected}",
                file.display()
            ),
            PinError::Io { path, error } => write!(f, "cannot write {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for PinError {}

/// Stores `bytes` as `pin`'s file under `dir` if, and only if, they are the pinned bytes. The
/// file is written next to its destination and renamed into place, so the cache never holds a
/// partial or unverified file.
pub fn store_verified(dir: &Path, pin: &PinnedFile, bytes: &[u8]) -> Result<PathBuf, PinError> {
    let actual = git_blob_sha1(bytes);
    if actual != pin.blob {
        return Err(PinError::Mismatch {
            file: pin.relative_path(),
            expected: pin.blob,
            actual,
        });
    }
    let dest = dir.join(pin.relative_path());
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| PinError::Io { path, error }
    };
    // The cache itself is the user's choice (`CLUSTER_SCHEMAS_DIR` or the default), created as
    // given. Below it, through directory handles: each folder created if missing and never
    // followed if it is a symlink (so swapping one mid-write cannot redirect the write), an
    // exclusive temporary file of unpredictable name, and a symlink planted at the file's name
    // replaced, never written through.
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    schema::writefile::replace_under(dir, Path::new(pin.folder), pin.file, bytes, 0o644)
        .map_err(io(&dest))?;
    Ok(dest)
}

/// State of one pinned file in a schema directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStatus {
    Ok,
    Missing,
    /// Present but not the pinned bytes (edited or corrupted); the actual blob id.
    Modified(String),
    /// Present but not read: a symlink, not a regular file, or larger than any pinned file.
    Unusable(String),
}

/// The bytes of `pin`'s file under `dir` if they are the pinned bytes: read through
/// `schema::repofile` (no symlink below `dir`, a regular file, at most `max` bytes), then checked
/// against the pinned blob id. The one way verify reads a pinned file it will use.
pub(crate) fn read_pinned(dir: &Path, pin: &PinnedFile, max: u64) -> Result<Vec<u8>, FileStatus> {
    // The cache is untrusted: bounded, no symlink below `dir` followed, regular files only (a
    // FIFO planted at a pinned path would otherwise hang `schemas status` and `schemas fetch`).
    let bytes =
        schema::repofile::read_under(dir, &pin.relative_path(), max).map_err(|e| match e {
            schema::repofile::ReadError::NotFound => FileStatus::Missing,
            e => FileStatus::Unusable(e.to_string()),
        })?;
    let blob = git_blob_sha1(&bytes);
    if blob == pin.blob {
        Ok(bytes)
    } else {
        Err(FileStatus::Modified(blob))
    }
}

/// The state of every pinned file under `dir`.
pub fn status(dir: &Path) -> Vec<(&'static PinnedFile, FileStatus)> {
    status_of(dir, PINS.iter())
}

/// The schema cache: `$CLUSTER_SCHEMAS_DIR` if set, else
/// `$XDG_CACHE_HOME/aiops-cluster-template/schemas`, else `~/.cache/aiops-cluster-template/schemas`.
pub fn cache_dir() -> Option<PathBuf> {
    cache_dir_from(|k| std::env::var_os(k))
}

/// [`cache_dir`] with the environment supplied by the caller.
pub fn cache_dir_from(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("CLUSTER_SCHEMAS_DIR") {
        return Some(dir);
    }
    let base = set("XDG_CACHE_HOME").or_else(|| set("HOME").map(|h| h.join(".cache")))?;
    Some(base.join("aiops-cluster-template").join("schemas"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_match_git() {
        // `printf 'hello\n' | git hash-object --stdin`; the empty blob likewise.
        assert_eq!(
            git_blob_sha1(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        assert_eq!(
            git_blob_sha1(b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
    }

    #[test]
    fn refuses_bytes_that_are_not_the_pin() {
        let dir = std::env::temp_dir().join(format!("verify-pins-{}", std::process::id()));
        let err = store_verified(&dir, &PINS[0], b"not the file").unwrap_err();
        assert!(matches!(err, PinError::Mismatch { .. }));
        assert!(!dir.join(PINS[0].relative_path()).exists());
    }

    #[test]
    fn cache_dir_precedence() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            cache_dir_from(env(&[("CLUSTER_SCHEMAS_DIR", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x"))
        );
        assert_eq!(
            cache_dir_from(env(&[("XDG_CACHE_HOME", "/c"), ("HOME", "/h")])),
            Some(PathBuf::from("/c/aiops-cluster-template/schemas"))
        );
        assert_eq!(
            cache_dir_from(env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/aiops-cluster-template/schemas"))
        );
        assert_eq!(cache_dir_from(env(&[])), None);
    }

    #[test]
    fn urls_use_the_commit() {
        assert_eq!(
            PINS[0].url("http://127.0.0.1:9/"),
            "http://127.0.0.1:9/envoyproxy/ai-gateway/ad5f75ee5cc7f0adc5bc9702d9ada3ad97a63612/manifests/charts/ai-gateway-crds-helm/templates/aigateway.envoyproxy.io_aigatewayroutes.yaml"
        );
    }
}
