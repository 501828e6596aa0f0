//! Properties of the base cluster tree (cluster-template parity), checked on the rendered output
//! of the real templates for the public, private and single-node configurations:
//!
//! - every rendered YAML document parses;
//! - `kubectl kustomize` builds every directory holding a `kustomization.yaml` (an oracle: skipped
//!   with a message when kubectl is missing, unless `REQUIRE_ORACLES=1`);
//! - Flux wiring: every app `ks.yaml` follows the cluster-template conventions, is listed by its
//!   namespace `kustomization.yaml` (and every listed one exists), every `dependsOn` resolves;
//! - features toggle whole files: spegel only with several nodes, Proxmox CSI/CCM only when
//!   configured, and going from two nodes to one removes exactly spegel's files;
//! - versions: every OCIRepository pins `ref.tag`, nothing is `latest`, every pinned version has a
//!   Renovate comment on the line above;
//! - secrets: every Secret lives in a `*.sops.yaml` file and such files carry values only under
//!   `stringData`/`data`;
//! - the bootstrap helmfiles find the OCIRepository and HelmRelease of every release they read;
//! - `crates/verify` finds nothing in the rendered trees (CRD schemas and CEL rules of
//!   `../shared/schemas`, kustomize and Flux graphs).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use render::Rendered;
use serde_json::Value as Json;

const PUBLIC: (&str, &str) = (".github/tests/public.yaml", ".github/tests/nodes.yaml");
const PRIVATE: (&str, &str) = (".github/tests/private.yaml", ".github/tests/nodes.yaml");
const SINGLE: (&str, &str) = (
    "crates/render/tests/configs/single-node.yaml",
    "crates/render/tests/configs/single-node-nodes.yaml",
);
const SINGLE_PLUS_WORKER: (&str, &str) = (
    "crates/render/tests/configs/single-node.yaml",
    "crates/render/tests/configs/two-nodes.yaml",
);
const ALL: [(&str, &str); 3] = [PUBLIC, PRIVATE, SINGLE];

fn render((cluster, nodes): (&str, &str)) -> Rendered {
    let root = common::repo_root();
    let outcome = schema::load(&root.join(cluster), &root.join(nodes));
    let config = outcome
        .config
        .unwrap_or_else(|| panic!("{cluster} is invalid"));
    let inputs = common::fake_inputs();
    render::render_templates(&root.join("templates"), &config.context(), &inputs).unwrap_or_else(
        |d| {
            panic!(
                "{cluster}: {}",
                d.iter().map(|d| d.render(None)).collect::<String>()
            )
        },
    )
}

fn text(r: &Rendered, path: &str) -> String {
    let file = r
        .files
        .get(path)
        .unwrap_or_else(|| panic!("{path} was not rendered"));
    String::from_utf8(file.contents.clone()).unwrap()
}

fn doc(r: &Rendered, path: &str) -> Json {
    let mut docs = common::documents(r, path);
    assert_eq!(docs.len(), 1, "{path}: expected one document");
    docs.remove(0)
}

fn str_at<'a>(v: &'a Json, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Json::as_str).unwrap_or("")
}

/// A file sops encrypts (`x.sops.yaml`), not the sops configuration `.sops.yaml` itself.
fn is_sops_file(path: &str) -> bool {
    path.ends_with(".sops.yaml")
        && !path
            .rsplit('/')
            .next()
            .unwrap_or(path)
            .starts_with(".sops.")
}

fn is_yaml(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
}

/// Every app `ks.yaml` under `kubernetes/apps/<dir>/` (at any depth, outside `app/` folders), as
/// (namespace directory, path of the app relative to it): `("kube-system", "cilium")`.
fn app_dirs(r: &Rendered) -> BTreeSet<(String, String)> {
    r.files
        .keys()
        .filter_map(|p| {
            let rest = p
                .strip_prefix("kubernetes/apps/")?
                .strip_suffix("/ks.yaml")?;
            let (dir, app) = rest.split_once('/')?;
            (!app.split('/').any(|c| c == "app")).then(|| (dir.to_owned(), app.to_owned()))
        })
        .collect()
}

#[test]
fn every_rendered_yaml_document_parses() {
    for config in ALL {
        let r = render(config);
        let docs = common::all_documents(&r);
        assert!(
            docs.len() > 50,
            "{}: only {} documents",
            config.0,
            docs.len()
        );
        for (path, d) in &docs {
            assert!(d.is_object(), "{path}: a document is not a mapping: {d}");
        }
    }
}

/// Writes the rendered tree into a fresh directory under the system temp dir.
fn write_tree(r: &Rendered, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("base-templates-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, file) in &r.files {
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, &file.contents).unwrap();
    }
    dir
}

/// Tells that a check did not run because its oracle is absent.
#[allow(clippy::print_stderr)]
fn skip(message: &str) {
    eprintln!("SKIP: {message}");
}

fn kubectl_available() -> bool {
    let ok = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("REQUIRE_ORACLES").as_deref() == Ok("1") {
            panic!("kubectl is required (REQUIRE_ORACLES=1) but was not found");
        }
        skip("kubectl not found; `kubectl kustomize` checks did not run");
    }
    ok
}

#[test]
fn kubectl_kustomize_builds_every_kustomization_directory() {
    if !kubectl_available() {
        return;
    }
    for (config, name) in [(PUBLIC, "public"), (PRIVATE, "private"), (SINGLE, "single")] {
        let r = render(config);
        let dir = write_tree(&r, name);
        let dirs: Vec<&String> = r
            .files
            .keys()
            .filter(|p| p.ends_with("/kustomization.yaml"))
            .collect();
        assert!(
            dirs.len() > 15,
            "{name}: only {} kustomization dirs",
            dirs.len()
        );
        let mut failures = Vec::new();
        for k in &dirs {
            let kdir = dir.join(k.strip_suffix("/kustomization.yaml").unwrap());
            let out = Command::new("kubectl")
                .arg("kustomize")
                .arg(&kdir)
                .output()
                .unwrap();
            if !out.status.success() {
                failures.push(format!("{k}: {}", String::from_utf8_lossy(&out.stderr)));
            } else if out.stdout.is_empty() {
                failures.push(format!("{k}: built nothing"));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
    }
}

#[test]
fn app_kustomizations_follow_the_cluster_template_pattern() {
    for config in ALL {
        let r = render(config);
        let apps = app_dirs(&r);
        let dirs: BTreeSet<&String> = apps.iter().map(|(dir, _)| dir).collect();
        // The namespace each directory's kustomization.yaml sets (usually the directory name).
        let mut namespace_of: BTreeMap<&str, String> = BTreeMap::new();
        for dir in &dirs {
            let nsk = doc(&r, &format!("kubernetes/apps/{dir}/kustomization.yaml"));
            let ns = str_at(&nsk, "/namespace").to_owned();
            assert!(!ns.is_empty(), "{dir}/kustomization.yaml sets no namespace");
            assert_eq!(
                nsk["components"],
                serde_json::json!(["../../components/sops"])
            );
            let listed: BTreeSet<String> = nsk["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            let mut expected: BTreeSet<String> = apps
                .iter()
                .filter(|(d, _)| d == *dir)
                .map(|(_, a)| format!("./{a}/ks.yaml"))
                .collect();
            expected.insert("./namespace.yaml".into());
            assert_eq!(
                listed, expected,
                "{}: {dir}/kustomization.yaml lists exactly its apps",
                config.0
            );
            let nsdoc = doc(&r, &format!("kubernetes/apps/{dir}/namespace.yaml"));
            assert_eq!(str_at(&nsdoc, "/metadata/name"), ns);
            assert_eq!(
                str_at(
                    &nsdoc,
                    "/metadata/annotations/kustomize.toolkit.fluxcd.io~1prune"
                ),
                "disabled"
            );
            namespace_of.insert(dir.as_str(), ns);
        }
        // Flux Kustomizations by (namespace, name); names are unique per namespace.
        let mut known: BTreeSet<(String, String)> = BTreeSet::new();
        for (dir, app) in &apps {
            let ks = doc(&r, &format!("kubernetes/apps/{dir}/{app}/ks.yaml"));
            let key = (
                namespace_of[dir.as_str()].clone(),
                str_at(&ks, "/metadata/name").to_owned(),
            );
            assert!(
                known.insert(key.clone()),
                "{}: two Kustomizations {key:?}",
                config.0
            );
        }
        for (dir, app) in &apps {
            let ns = &namespace_of[dir.as_str()];
            let ks = doc(&r, &format!("kubernetes/apps/{dir}/{app}/ks.yaml"));
            let at = |p: &str| str_at(&ks, p).to_owned();
            assert_eq!(at("/apiVersion"), "kustomize.toolkit.fluxcd.io/v1");
            assert_eq!(at("/kind"), "Kustomization");
            if !app.contains('/') {
                assert_eq!(
                    at("/metadata/name"),
                    *app,
                    "{dir}/{app}: named after the app"
                );
            }
            assert!(
                ks["metadata"].get("namespace").is_none(),
                "{dir}/{app}: namespace comes from the directory"
            );
            assert_eq!(at("/spec/targetNamespace"), *ns);
            let path = at("/spec/path");
            assert_eq!(path, format!("./kubernetes/apps/{dir}/{app}/app"));
            let kpath = format!("{}/kustomization.yaml", path.trim_start_matches("./"));
            assert!(r.files.contains_key(&kpath), "{dir}/{app}: {kpath} missing");
            assert_eq!(at("/spec/interval"), "1h");
            assert_eq!(ks["spec"]["prune"], Json::Bool(true));
            assert_eq!(
                ks["spec"]["sourceRef"],
                serde_json::json!({"kind": "GitRepository", "name": "flux-system", "namespace": "flux-system"})
            );
            assert_eq!(
                ks["spec"]["postBuild"]["substituteFrom"],
                serde_json::json!([{"name": "cluster-secrets", "kind": "Secret"}])
            );
            for dep in ks["spec"]["dependsOn"].as_array().into_iter().flatten() {
                // A dependsOn without namespace means the Kustomization's own namespace.
                let dep_ns = dep.get("namespace").and_then(Json::as_str).unwrap_or(ns);
                let key = (dep_ns.to_owned(), str_at(dep, "/name").to_owned());
                assert!(
                    known.contains(&key),
                    "{dir}/{app}: dependsOn {key:?} does not exist"
                );
            }
        }
    }
}

#[test]
fn flux_entry_point_decrypts_and_sets_helmrelease_defaults() {
    let r = render(PUBLIC);
    let ks = doc(&r, "kubernetes/flux/cluster/ks.yaml");
    assert_eq!(str_at(&ks, "/metadata/name"), "cluster-apps");
    assert_eq!(str_at(&ks, "/metadata/namespace"), "flux-system");
    assert_eq!(str_at(&ks, "/spec/path"), "./kubernetes/apps");
    assert_eq!(
        ks["spec"]["decryption"],
        serde_json::json!({"provider": "sops"})
    );
    assert_eq!(str_at(&ks, "/spec/deletionPolicy"), "WaitForTermination");
    // The child patch is itself YAML; parse it and check what it hands to every app.
    let patch = str_at(&ks, "/spec/patches/0/patch");
    let child = schema::yaml::load(patch, Path::new("patch"), schema::yaml::Limits::MANIFESTS);
    assert!(child.diagnostics.is_empty());
    let child = child.documents[0].to_json();
    assert_eq!(
        child["spec"]["decryption"],
        serde_json::json!({"provider": "sops"})
    );
    let hr = str_at(&child, "/spec/patches/0/patch");
    let hr = schema::yaml::load(hr, Path::new("hr"), schema::yaml::Limits::MANIFESTS).documents[0]
        .to_json();
    assert_eq!(str_at(&hr, "/spec/install/crds"), "CreateReplace");
    assert_eq!(str_at(&hr, "/spec/upgrade/crds"), "CreateReplace");
    assert_eq!(
        hr["spec"]["upgrade"]["remediation"]["retries"],
        Json::from(2)
    );
    // kubernetes/apps has no root kustomization (Flux generates one over the namespace dirs).
    assert!(!r.files.contains_key("kubernetes/apps/kustomization.yaml"));
}

#[test]
fn spegel_only_with_several_nodes() {
    for (config, expect) in [
        (PUBLIC, true),
        (PRIVATE, true),
        (SINGLE, false),
        (SINGLE_PLUS_WORKER, true),
    ] {
        let r = render(config);
        let spegel: Vec<&String> = r.files.keys().filter(|p| p.contains("/spegel/")).collect();
        assert_eq!(!spegel.is_empty(), expect, "{config:?}");
        assert_eq!(
            text(&r, "kubernetes/apps/kube-system/kustomization.yaml").contains("./spegel/ks.yaml"),
            expect
        );
        assert_eq!(
            text(&r, "bootstrap/helmfile.d/01-apps.yaml").contains("name: spegel"),
            expect
        );
    }
}

/// Going from two nodes to one removes exactly spegel's files; the worker disappears from
/// talconfig together with its inline patches, and no other file appears or vanishes.
#[test]
fn two_to_one_node_removes_exactly_spegel_and_the_worker() {
    let two = render(SINGLE_PLUS_WORKER);
    let one = render(SINGLE);
    let two_files: BTreeSet<&String> = two.files.keys().collect();
    let one_files: BTreeSet<&String> = one.files.keys().collect();
    assert!(
        one_files.is_subset(&two_files),
        "one node renders files two nodes do not: {:?}",
        one_files.difference(&two_files).collect::<Vec<_>>()
    );
    let removed: BTreeSet<&str> = two_files
        .difference(&one_files)
        .map(|p| p.as_str())
        .collect();
    let expected: BTreeSet<&str> = [
        "kubernetes/apps/kube-system/spegel/ks.yaml",
        "kubernetes/apps/kube-system/spegel/app/helmrelease.yaml",
        "kubernetes/apps/kube-system/spegel/app/kustomization.yaml",
        "kubernetes/apps/kube-system/spegel/app/ocirepository.yaml",
    ]
    .into();
    assert_eq!(removed, expected);

    let tal_two = doc(&two, "talos/talconfig.yaml");
    let tal_one = doc(&one, "talos/talconfig.yaml");
    let names = |t: &Json| -> Vec<String> {
        t["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| str_at(n, "/hostname").to_owned())
            .collect()
    };
    assert_eq!(names(&tal_two), ["solo", "worker-1"]);
    assert_eq!(names(&tal_one), ["solo"]);
    let worker = &tal_two["nodes"][1];
    assert!(worker["patches"][0].as_str().unwrap().contains("nvidia"));
    assert!(!text(&one, "talos/talconfig.yaml").contains("nvidia"));
}

#[test]
fn proxmox_files_only_when_enabled() {
    // public: CSI + CCM; private: CSI only; single node: neither.
    for (config, csi, ccm) in [
        (PUBLIC, true, true),
        (PRIVATE, true, false),
        (SINGLE, false, false),
    ] {
        let r = render(config);
        for (app, on) in [("proxmox-csi", csi), ("proxmox-ccm", ccm)] {
            let files: Vec<&String> = r
                .files
                .keys()
                .filter(|p| p.contains(&format!("/{app}/")))
                .collect();
            if on {
                assert_eq!(files.len(), 5, "{config:?} {app}: {files:?}");
            } else {
                assert!(files.is_empty(), "{config:?} {app}: {files:?}");
            }
            assert_eq!(
                text(&r, "kubernetes/apps/kube-system/kustomization.yaml")
                    .contains(&format!("./{app}/ks.yaml")),
                on
            );
        }
        let talconfig = text(&r, "talos/talconfig.yaml");
        // The Proxmox CCM and Talos' default (no cloud provider, as cluster-template) exclude each other.
        assert_eq!(
            talconfig.contains("externalCloudProvider"),
            ccm,
            "{config:?}"
        );
        assert_eq!(
            text(&r, "bootstrap/helmfile.d/01-apps.yaml").contains("name: proxmox-ccm"),
            ccm
        );
        assert_eq!(
            text(
                &r,
                "kubernetes/apps/kube-system/coredns/app/helmrelease.yaml"
            )
            .contains("node.cloudprovider.kubernetes.io/uninitialized"),
            ccm
        );
        assert_eq!(
            talconfig.contains("topology.kubernetes.io/region"),
            csi && !ccm
        );
        if csi {
            let hr = doc(
                &r,
                "kubernetes/apps/kube-system/proxmox-csi/app/helmrelease.yaml",
            );
            assert_eq!(
                str_at(&hr, "/spec/values/storageClass/0/storage"),
                "local-zfs"
            );
            let secret = doc(
                &r,
                "kubernetes/apps/kube-system/proxmox-csi/app/secret.sops.yaml",
            );
            let config = str_at(&secret, "/stringData/config.yaml");
            let parsed = schema::yaml::load(
                config,
                Path::new("config.yaml"),
                schema::yaml::Limits::MANIFESTS,
            );
            let cluster = &parsed.documents[0].to_json()["clusters"][0];
            assert_eq!(str_at(cluster, "/token_id"), "kubernetes-csi@pve!csi");
            assert_eq!(str_at(cluster, "/token_secret"), "fake-csi-secret");
            assert_eq!(
                str_at(cluster, "/url"),
                "https://pve.example.com:8006/api2/json"
            );
            assert_eq!(cluster["insecure"], Json::Bool(false));
        }
    }
}

#[test]
fn every_version_is_pinned_with_a_renovate_comment() {
    for config in ALL {
        let r = render(config);
        let mut oci = 0;
        for (path, d) in common::all_documents(&r) {
            if str_at(&d, "/kind") == "OCIRepository" {
                oci += 1;
                let tag = str_at(&d, "/spec/ref/tag");
                assert!(!tag.is_empty(), "{path}: no ref.tag");
                let dep = str_at(&d, "/spec/url")
                    .trim_start_matches("oci://")
                    .to_owned();
                let comment = format!("# renovate: datasource=docker depName={dep}");
                let body = text(&r, &path);
                let lines: Vec<&str> = body.lines().map(str::trim).collect();
                let at = lines
                    .iter()
                    .position(|l| l.starts_with("tag:") && l.contains(tag))
                    .unwrap_or_else(|| panic!("{path}: no `tag: {tag}` line"));
                let renovate = lines[at - 1].starts_with(&comment) || lines[at].contains(&comment);
                assert!(renovate, "{path}: `{comment}` missing beside the tag");
            }
        }
        assert!(oci >= 12, "{}: {oci} OCIRepositories", config.0);
        // Any pinned version or image tag anywhere: a Renovate comment right above, never latest.
        for (path, file) in &r.files {
            if !is_yaml(path) {
                continue;
            }
            let body = String::from_utf8_lossy(&file.contents);
            let lines: Vec<&str> = body.lines().map(str::trim).collect();
            for (i, line) in lines.iter().enumerate() {
                let pinned = ["tag:", "version:", "talosVersion:", "kubernetesVersion:"]
                    .iter()
                    .any(|k| line.starts_with(k));
                if !pinned || line.contains("{{") || line.contains("${") {
                    continue;
                }
                assert!(!line.contains("latest"), "{path}: {line}");
                assert!(
                    (i > 0 && lines[i - 1].starts_with("# renovate: datasource="))
                        || line.contains("# renovate: datasource="),
                    "{path}: `{line}` has no Renovate comment beside it"
                );
            }
        }
        assert!(
            !r.files
                .values()
                .any(|f| String::from_utf8_lossy(&f.contents).contains("v0.0.0-latest"))
        );
    }
}

#[test]
fn secrets_live_only_in_sops_files_under_string_data() {
    for config in ALL {
        let r = render(config);
        for (path, d) in common::all_documents(&r) {
            let kind = str_at(&d, "/kind");
            if is_sops_file(&path) {
                assert_eq!(kind, "Secret", "{path}: a *.sops.yaml holds only Secrets");
                for key in d.as_object().unwrap().keys() {
                    assert!(
                        [
                            "apiVersion",
                            "kind",
                            "metadata",
                            "type",
                            "stringData",
                            "data"
                        ]
                        .contains(&key.as_str()),
                        "{path}: `{key}` would be stored unencrypted"
                    );
                }
                for key in d["metadata"].as_object().unwrap().keys() {
                    assert!(
                        ["name", "namespace", "annotations", "labels"].contains(&key.as_str()),
                        "{path}: metadata.{key}"
                    );
                }
                assert!(
                    d.get("stringData").is_some() || d.get("data").is_some(),
                    "{path}: no data"
                );
                assert_eq!(
                    str_at(
                        &d,
                        "/metadata/annotations/kustomize.toolkit.fluxcd.io~1substitute"
                    ),
                    "disabled",
                    "{path}: Flux must not substitute inside secret values"
                );
            } else {
                assert_ne!(
                    kind, "Secret",
                    "{path}: a Secret outside a *.sops.yaml file would be committed in plaintext"
                );
            }
        }
        // Secret values reach the tree only inside *.sops.yaml files.
        let inputs = common::fake_inputs();
        let secrets = [
            inputs.age_private_key.unwrap(),
            inputs.push_token.unwrap(),
            inputs.cloudflare_tunnel.unwrap().token(),
            "fake-csi-secret".to_owned(),
            "fake-ccm-secret".to_owned(),
        ];
        for (path, file) in &r.files {
            if is_sops_file(path) {
                continue;
            }
            let body = String::from_utf8_lossy(&file.contents);
            for s in &secrets {
                assert!(!body.contains(s.as_str()), "{path} contains a secret value");
            }
        }
    }
}

#[test]
fn deploy_key_only_for_private_repositories() {
    let public = render(PUBLIC);
    let private = render(PRIVATE);
    assert!(
        !public
            .files
            .contains_key("bootstrap/github-deploy-key.sops.yaml")
    );
    let key = doc(&private, "bootstrap/github-deploy-key.sops.yaml");
    // The key file's final newline (trimmed when it was read) is restored: OpenSSH needs it.
    assert_eq!(
        str_at(&key, "/stringData/identity"),
        format!("{}\n", common::fake_inputs().deploy_key.unwrap())
    );
    let instance = |r: &Rendered| {
        doc(
            r,
            "kubernetes/apps/flux-system/flux-instance/app/helmrelease.yaml",
        )
    };
    assert_eq!(
        str_at(&instance(&public), "/spec/values/instance/sync/url"),
        "https://github.com/onedr0p/cluster-template.git"
    );
    let sync = &instance(&private)["spec"]["values"]["instance"]["sync"];
    assert_eq!(
        str_at(sync, "/url"),
        "ssh://git@github.com/onedr0p/cluster-template.git"
    );
    assert_eq!(str_at(sync, "/pullSecret"), "github-deploy-key");
    let age = doc(&public, "bootstrap/sops-age.sops.yaml");
    assert_eq!(str_at(&age, "/metadata/namespace"), "flux-system");
    assert_eq!(
        str_at(&age, "/stringData/age.agekey"),
        common::fake_inputs().age_private_key.unwrap()
    );
}

/// GitHub's published SSH host key fingerprints for github.com (GitHub Docs, "GitHub's SSH key
/// fingerprints"), one per key type.
const GITHUB_HOST_KEY_FINGERPRINTS: [(&str, &str); 3] = [
    (
        "ssh-ed25519",
        "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU",
    ),
    (
        "ecdsa-sha2-nistp256",
        "SHA256:p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM",
    ),
    (
        "ssh-rsa",
        "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
    ),
];

#[test]
fn deploy_key_known_hosts_carries_every_github_host_key() {
    let private = render(PRIVATE);
    let key = doc(&private, "bootstrap/github-deploy-key.sops.yaml");
    let known_hosts = str_at(&key, "/stringData/known_hosts");
    let types: Vec<&str> = known_hosts
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!((f.len(), f[0]), (3, "github.com"), "{l}");
            f[1]
        })
        .collect();
    assert_eq!(
        types,
        GITHUB_HOST_KEY_FINGERPRINTS.map(|(t, _)| t).to_vec(),
        "one line per published key type"
    );
    // The keys themselves: ssh-keygen computes each fingerprint (the oracle for the key bytes).
    let dir = write_tree(&private, "known-hosts");
    let file = dir.join("known_hosts");
    std::fs::write(&file, known_hosts).unwrap();
    match Command::new("ssh-keygen").arg("-lf").arg(&file).output() {
        Ok(out) if out.status.success() => {
            let listed = String::from_utf8(out.stdout).unwrap();
            for (kind, fingerprint) in GITHUB_HOST_KEY_FINGERPRINTS {
                assert!(
                    listed.contains(&format!(" {fingerprint} github.com ")),
                    "{kind}: fingerprint {fingerprint} not in\n{listed}"
                );
            }
        }
        _ if std::env::var("REQUIRE_ORACLES").as_deref() == Ok("1") => {
            panic!("ssh-keygen is required (REQUIRE_ORACLES=1) but did not run")
        }
        _ => skip("ssh-keygen not found; GitHub host key fingerprints not checked"),
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn flux_receiver_and_envoy_policies_match_cluster_template() {
    let r = render(PUBLIC);
    let receiver = doc(
        &r,
        "kubernetes/apps/flux-system/flux-instance/app/receiver.yaml",
    );
    let resources: Vec<(&str, &str, &str)> = receiver["spec"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                str_at(o, "/kind"),
                str_at(o, "/name"),
                str_at(o, "/namespace"),
            )
        })
        .collect();
    assert_eq!(
        resources,
        [
            ("GitRepository", "flux-system", "flux-system"),
            ("Kustomization", "flux-system", "flux-system")
        ]
    );
    let docs = common::documents(&r, "kubernetes/apps/network/envoy-gateway/app/envoy.yaml");
    let policy = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == "envoy")
            .unwrap_or_else(|| panic!("{kind} envoy"))
            .clone()
    };
    let client = policy("ClientTrafficPolicy");
    assert_eq!(client["spec"]["tcpKeepalive"], serde_json::json!({}));
    let backend = policy("BackendTrafficPolicy");
    assert!(
        backend["spec"].get("compression").is_none(),
        "`compression` is deprecated in Envoy Gateway v1.6; use `compressor`"
    );
    assert_eq!(
        backend["spec"]["compressor"],
        serde_json::json!([
            {"type": "Zstd", "zstd": {}},
            {"type": "Brotli", "brotli": {}},
            {"type": "Gzip", "gzip": {}}
        ])
    );
    assert_eq!(backend["spec"]["tcpKeepalive"], serde_json::json!({}));
}

#[test]
fn sops_config_has_exactly_the_two_creation_rules() {
    let r = render(PUBLIC);
    let cfg = doc(&r, ".sops.yaml");
    let recipient = common::fake_inputs().age_public_key.unwrap();
    assert_eq!(
        cfg,
        serde_json::json!({
            "creation_rules": [
                {"path_regex": "talos/.*\\.sops\\.ya?ml", "mac_only_encrypted": true, "age": recipient},
                {"path_regex": "(bootstrap|kubernetes)/.*\\.sops\\.ya?ml", "encrypted_regex": "^(data|stringData)$", "mac_only_encrypted": true, "age": recipient},
            ],
            "stores": {"yaml": {"indent": 2}},
        })
    );
}

/// The helmfiles read `kubernetes/apps/<namespace>/<release>/app/{ocirepository,helmrelease}.yaml`
/// at run time; every such file must exist, and the HelmRelease/OCIRepository names must match
/// the release (Flux adopts the Helm release by name).
#[test]
fn bootstrap_helmfiles_find_their_charts_and_values() {
    for config in ALL {
        let r = render(config);
        for (file, needs_values) in [
            ("bootstrap/helmfile.d/00-crds.yaml", false),
            ("bootstrap/helmfile.d/01-apps.yaml", true),
        ] {
            let h = doc(&r, file);
            let template = &h["templates"]["flux-app"];
            assert!(
                str_at(template, "/chart")
                    .contains("../../kubernetes/apps/%s/%s/app/ocirepository.yaml")
            );
            assert!(str_at(template, "/version").contains(".spec.ref.tag"));
            let mut flux_apps = 0;
            for rel in h["releases"].as_array().unwrap() {
                let (name, ns) = (str_at(rel, "/name"), str_at(rel, "/namespace"));
                if rel.get("inherit").is_none() {
                    assert!(rel.get("version").is_some(), "{file}: {name} is not pinned");
                    continue;
                }
                flux_apps += 1;
                let oci = doc(
                    &r,
                    &format!("kubernetes/apps/{ns}/{name}/app/ocirepository.yaml"),
                );
                assert_eq!(str_at(&oci, "/metadata/name"), name);
                if needs_values {
                    let hr = doc(
                        &r,
                        &format!("kubernetes/apps/{ns}/{name}/app/helmrelease.yaml"),
                    );
                    assert_eq!(str_at(&hr, "/metadata/name"), name);
                    assert_eq!(str_at(&hr, "/spec/chartRef/name"), name);
                    assert!(hr["spec"]["values"].is_object(), "{name}: no values");
                }
                for need in rel["needs"].as_array().into_iter().flatten() {
                    let need = need.as_str().unwrap();
                    assert!(
                        h["releases"].as_array().unwrap().iter().any(|o| format!(
                            "{}/{}",
                            str_at(o, "/namespace"),
                            str_at(o, "/name")
                        ) == need),
                        "{file}: {name} needs {need}, which is not a release"
                    );
                }
            }
            assert!(flux_apps >= 2);
        }
        let values = text(&r, "bootstrap/helmfile.d/templates/values.yaml.gotmpl");
        assert!(values.contains("../../../kubernetes/apps/%s/%s/app/helmrelease.yaml"));
        // Envoy Gateway's CRDs come from the same pinned chart Flux installs.
        assert!(text(&r, "bootstrap/helmfile.d/00-crds.yaml").contains("name: envoy-gateway"));
    }
}

#[test]
fn every_helmrelease_uses_an_ocirepository_of_its_kustomization() {
    for config in ALL {
        let r = render(config);
        for path in r
            .files
            .keys()
            .filter(|p| p.ends_with("/kustomization.yaml") && p.starts_with("kubernetes/apps/"))
        {
            let dir = path.strip_suffix("kustomization.yaml").unwrap();
            let kz = doc(&r, path);
            let resources: Vec<&str> = kz["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Json::as_str)
                .collect();
            // Every listed resource was rendered.
            for res in &resources {
                let file = format!("{dir}{}", res.trim_start_matches("./"));
                assert!(
                    r.files.contains_key(&file),
                    "{path}: {res} was not rendered"
                );
            }
            let docs: Vec<Json> = resources
                .iter()
                .filter(|res| res.ends_with(".yaml"))
                .flat_map(|res| {
                    common::documents(&r, &format!("{dir}{}", res.trim_start_matches("./")))
                })
                .collect();
            let oci: BTreeSet<&str> = docs
                .iter()
                .filter(|d| d["kind"] == "OCIRepository")
                .map(|d| str_at(d, "/metadata/name"))
                .collect();
            for hr in docs.iter().filter(|d| d["kind"] == "HelmRelease") {
                assert_eq!(hr["spec"]["chartRef"]["kind"], "OCIRepository", "{path}");
                let chart = str_at(hr, "/spec/chartRef/name");
                assert!(
                    oci.contains(chart),
                    "{path}: HelmRelease chartRef {chart} is not in this kustomization"
                );
            }
        }
    }
}

#[test]
fn envoy_gateway_and_gateways_match_cluster_template() {
    let r = render(PUBLIC);
    let oci = doc(
        &r,
        "kubernetes/apps/network/envoy-gateway/app/ocirepository.yaml",
    );
    assert_eq!(str_at(&oci, "/spec/ref/tag"), "v1.6.7");
    assert_eq!(
        str_at(&oci, "/spec/url"),
        "oci://mirror.gcr.io/envoyproxy/gateway-helm"
    );
    let hr = doc(
        &r,
        "kubernetes/apps/network/envoy-gateway/app/helmrelease.yaml",
    );
    assert_eq!(
        str_at(
            &hr,
            "/spec/values/config/envoyGateway/provider/kubernetes/deploy/type"
        ),
        "GatewayNamespace"
    );
    let docs = common::documents(&r, "kubernetes/apps/network/envoy-gateway/app/envoy.yaml");
    let gateway = |name: &str| {
        docs.iter()
            .find(|d| d["kind"] == "Gateway" && d["metadata"]["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        str_at(
            &gateway("envoy-external"),
            "/spec/infrastructure/annotations/lbipam.cilium.io~1ips"
        ),
        "10.10.10.251"
    );
    assert_eq!(
        str_at(
            &gateway("envoy-internal"),
            "/spec/infrastructure/annotations/lbipam.cilium.io~1ips"
        ),
        "10.10.10.252"
    );
    let k8s_gateway = doc(
        &r,
        "kubernetes/apps/network/k8s-gateway/app/helmrelease.yaml",
    );
    assert_eq!(
        str_at(
            &k8s_gateway,
            "/spec/values/service/annotations/lbipam.cilium.io~1ips"
        ),
        "10.10.10.253"
    );
    let coredns = doc(
        &r,
        "kubernetes/apps/kube-system/coredns/app/helmrelease.yaml",
    );
    assert_eq!(
        str_at(&coredns, "/spec/values/service/clusterIP"),
        "10.43.0.10"
    );
    // The template keeps a marked place for the AI Gateway's Envoy Gateway values (issue 6).
    let template = std::fs::read_to_string(
        common::repo_root()
            .join("templates/config/kubernetes/apps/network/envoy-gateway/app/helmrelease.yaml.j2"),
    )
    .unwrap();
    assert!(
        template
            .contains("#| AI Gateway: extension and rate-limit values are added here (issue 6) |#")
    );
}

#[test]
fn cilium_bgp_only_when_configured() {
    let public = render(PUBLIC);
    let private = render(PRIVATE);
    let kinds = |r: &Rendered| -> Vec<String> {
        common::documents(r, "kubernetes/apps/kube-system/cilium/app/networks.yaml")
            .iter()
            .map(|d| str_at(d, "/kind").to_owned())
            .collect()
    };
    assert_eq!(
        kinds(&public),
        [
            "CiliumLoadBalancerIPPool",
            "CiliumL2AnnouncementPolicy",
            "CiliumBGPAdvertisement",
            "CiliumBGPPeerConfig",
            "CiliumBGPClusterConfig"
        ]
    );
    assert_eq!(
        kinds(&private),
        ["CiliumLoadBalancerIPPool", "CiliumL2AnnouncementPolicy"]
    );
    let bgp = &common::documents(
        &public,
        "kubernetes/apps/kube-system/cilium/app/networks.yaml",
    )[4];
    assert_eq!(
        bgp["spec"]["bgpInstances"][0]["localASN"],
        Json::from(64514)
    );
    assert_eq!(
        bgp["spec"]["bgpInstances"][0]["peers"][0]["peerASN"],
        Json::from(64513)
    );
    let hr = |r: &Rendered| text(r, "kubernetes/apps/kube-system/cilium/app/helmrelease.yaml");
    assert!(hr(&public).contains("bgpControlPlane"));
    assert!(!hr(&private).contains("bgpControlPlane"));
}

/// Every value a base template prints goes through `| yaml` (which quotes any string so that it
/// parses back unchanged), except a few expressions that only ever print constants.
#[test]
fn base_templates_print_values_only_through_the_yaml_filter() {
    const CONSTANT_EXPRESSIONS: [&str; 2] = [
        "2 if nodes | length > 1 else 1",
        "'kube-system/proxmox-ccm' if proxmox_ccm_enabled else 'kube-system/coredns'",
    ];
    let config = common::repo_root().join("templates/config");
    let mut stack = vec![config.clone()];
    let mut checked = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(&config)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if path.is_dir() {
                // The AI Gateway templates are checked by their own tests (crates/render/tests/ai_gateway.rs).
                if rel != "kubernetes/apps/ai-gateway" {
                    stack.push(path);
                }
                continue;
            }
            if !rel.ends_with(".j2") {
                continue;
            }
            let body = std::fs::read_to_string(&path).unwrap();
            let mut rest = body.as_str();
            while let Some(start) = rest.find("#{") {
                let end = rest[start..]
                    .find("}#")
                    .unwrap_or_else(|| panic!("{rel}: unclosed #{{"));
                let expr = rest[start + 2..start + end].trim();
                checked += 1;
                assert!(
                    expr.ends_with("| yaml") || CONSTANT_EXPRESSIONS.contains(&expr),
                    "{rel}: `#{{ {expr} }}#` prints a value without `| yaml`"
                );
                rest = &rest[start + end + 2..];
            }
        }
    }
    assert!(checked > 50, "only {checked} expressions found");
}

/// Flux replaces `${VAR}` in app manifests with the values of `cluster-secrets` (postBuild);
/// an unknown variable would silently become an empty string. Every variable used under
/// `kubernetes/apps/` must be defined there. (Secrets are annotated so that Flux never
/// substitutes inside them; a `${` in a token stays as it is.)
#[test]
fn flux_substitutions_use_only_cluster_secrets_variables() {
    for config in ALL {
        let r = render(config);
        let secrets = doc(&r, "kubernetes/components/sops/cluster-secrets.sops.yaml");
        let defined: BTreeSet<&str> = secrets["stringData"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut used = 0;
        for (path, file) in r
            .files
            .iter()
            .filter(|(p, _)| p.starts_with("kubernetes/apps/") && !is_sops_file(p))
        {
            let body = String::from_utf8_lossy(&file.contents);
            let mut rest = body.as_ref();
            while let Some(start) = rest.find("${") {
                let end = rest[start..]
                    .find('}')
                    .unwrap_or_else(|| panic!("{path}: unclosed ${{"));
                let expr = &rest[start + 2..start + end];
                // `${VAR}`, `${VAR/./-}` (replacement), `${VAR:=default}`
                let name: String = expr
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    defined.contains(name.as_str()),
                    "{path}: ${{{expr}}} is not defined in cluster-secrets"
                );
                used += 1;
                rest = &rest[start + end..];
            }
        }
        assert!(used > 10, "{}: only {used} substitutions", config.0);
    }
}

/// The rendered trees pass `crates/verify` with the pinned upstream schemas of `../shared/schemas`
/// (CRD schemas with their CEL rules, the Kubernetes OpenAPI, the kustomize and Flux graphs).
/// The test trees keep their fake secrets in plaintext (encryption is `crates/secrets`' job, and
/// the configure pipeline encrypts before anything is written), so the one finding expected here
/// is `verify::sops_plaintext`, and only for `*.sops.yaml` files.
#[test]
fn rendered_trees_pass_verify_with_the_shared_schemas() {
    let shared = std::env::var_os("CLUSTER_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join("../shared"));
    let schemas_dir = shared.join("schemas");
    if !schemas_dir.is_dir() {
        assert_ne!(
            std::env::var("REQUIRE_ORACLES").as_deref(),
            Ok("1"),
            "{} is missing (REQUIRE_ORACLES=1)",
            schemas_dir.display()
        );
        skip(&format!(
            "{} not found; verify did not run",
            schemas_dir.display()
        ));
        return;
    }
    let schemas = verify::SchemaSet::load(&schemas_dir)
        .unwrap_or_else(|e| panic!("loading {}: {e}", schemas_dir.display()));
    for (config, name) in [(PUBLIC, "public"), (PRIVATE, "private"), (SINGLE, "single")] {
        let r = render(config);
        let dir = write_tree(&r, &format!("verify-{name}"));
        let report = verify::verify(&dir, &schemas, &verify::VerifyConfig::cluster_template());
        let _ = std::fs::remove_dir_all(&dir);
        let unexpected: Vec<String> = report
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .filter(|d| {
                let plaintext_secret = d.code == "verify::sops_plaintext"
                    && d.location.as_ref().is_some_and(|l| {
                        is_sops_file(&l.file.to_string_lossy().replace('\\', "/"))
                    });
                !plaintext_secret
            })
            .map(|d| d.render(None))
            .collect();
        assert!(unexpected.is_empty(), "{name}:\n{}", unexpected.join("\n"));
        assert!(report.stats.schemas_available);
        assert!(
            report.stats.schema_checked > 50,
            "{name}: only {} objects checked against a schema",
            report.stats.schema_checked
        );
        assert!(
            report.stats.flux_kustomizations >= 14,
            "{name}: {:?}",
            report.stats
        );
    }
}
