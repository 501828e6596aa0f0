//! `cargo xtask bootstrap talos|apps`: cluster-template's `.taskfiles/bootstrap` and its
//! `scripts/bootstrap-apps.sh`, on the rendered tree.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use schema::yaml::Limits;

use super::talos::{self, Options};
use super::{Cmd, Env, Flags, Job, Step};

pub const HELP: &str = "\
cargo xtask bootstrap <talos|apps> [options]

  talos    install Talos on every node and start the cluster: seal new Talos secrets into
           talos/talsecret.sops.yaml (once; commit it), `talhelper genconfig`, apply each node's
           configuration in maintenance mode, bootstrap etcd, fetch ./kubeconfig
  apps     what Flux needs before it can take over: wait for the nodes to register, create the
           namespaces of kubernetes/apps, apply the bootstrap secrets (decrypted in memory with
           age.key and piped into kubectl, never written to disk), apply the CRDs of
           bootstrap/helmfile.d/00-crds.yaml, then `helmfile sync` bootstrap/helmfile.d/01-apps.yaml
           (Cilium, CoreDNS, …, the Flux Operator and instance). Safe to run again.

Tools (versions pinned in tools.toml): talhelper and talosctl for `talos`; kubectl, helmfile
and helm for `apps`. kubectl and helmfile use $KUBECONFIG, else ./kubeconfig.

Options:
  --plan       print the exact commands (environment variables by name only) and run nothing
  --root DIR   the repository (default: this repository's root)

Exit code: 0 done, 1 a command failed, 2 could not run (a tool or file missing).
";

/// The bootstrap secrets and their namespaces, applied when rendered (a feature that is off
/// renders none): the sops-age key and deploy key Flux needs to clone and decrypt,
/// cluster-secrets for substitution, the Proxmox CCM's token (it starts before Flux).
pub const SECRETS: &[(&str, &str)] = &[
    ("bootstrap/sops-age.sops.yaml", "flux-system"),
    ("bootstrap/github-deploy-key.sops.yaml", "flux-system"),
    (
        "kubernetes/components/sops/cluster-secrets.sops.yaml",
        "flux-system",
    ),
    (
        "kubernetes/apps/kube-system/proxmox-ccm/app/secret.sops.yaml",
        "kube-system",
    ),
];

const CRDS_HELMFILE: &str = "bootstrap/helmfile.d/00-crds.yaml";
const APPS_HELMFILE: &str = "bootstrap/helmfile.d/01-apps.yaml";

pub fn run(args: &mut lexopt::Parser) -> Result<ExitCode> {
    use lexopt::Arg::{Long, Short, Value};
    let mut flags = Flags::default();
    let mut action: Option<String> = None;
    while let Some(arg) = args.next()? {
        if flags.take(&arg) {
            continue;
        }
        match arg {
            Long("root") => flags.root = Some(args.value()?.into()),
            Long("help") | Short('h') => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            Value(v) if action.is_none() => action = Some(v.to_string_lossy().into_owned()),
            other => return Err(crate::util::unexpected(&other, HELP)),
        }
    }
    if flags.yes {
        anyhow::bail!("bootstrap: --yes is not needed: bootstrap asks nothing");
    }
    let root = flags.root();
    let job = match action.as_deref() {
        Some("talos") => {
            let t = match super::load_talos(&root, "bootstrap talos") {
                Ok(t) => t,
                Err(code) => return Ok(code),
            };
            talos_job(&t, root)
        }
        Some("apps") => match apps_job(root) {
            Ok(job) => job,
            Err(errors) => {
                for e in errors {
                    eprintln!("bootstrap apps: {e}");
                }
                return Ok(ExitCode::from(2));
            }
        },
        Some(other) => anyhow::bail!("bootstrap: unknown action `{other}`\n\n{HELP}"),
        None => {
            eprint!("{HELP}");
            return Ok(ExitCode::from(2));
        }
    };
    super::execute(&job, &flags)
}

/// A key file is needed at `<root>/age.key` unless `$SOPS_AGE_KEY_FILE` names another.
pub fn age_key_need() -> Vec<(String, String)> {
    if std::env::var_os("SOPS_AGE_KEY_FILE").is_some_and(|v| !v.is_empty()) {
        Vec::new()
    } else {
        vec![(
            "age.key".to_owned(),
            "run `cargo xtask init`, or set SOPS_AGE_KEY_FILE to your key file".to_owned(),
        )]
    }
}

pub fn talos_job(t: &super::talconfig::Talos, root: PathBuf) -> Job {
    let first_install = Options {
        insecure: true,
        mode: "auto".to_owned(),
        wipe_all: false,
    };
    let mut steps = talos::generate_steps();
    steps.extend(
        t.nodes
            .iter()
            .map(|n| talos::apply_step(t, n, &first_install)),
    );
    steps.push(talos::bootstrap_step(t));
    steps.push(talos::kubeconfig_step(t));
    let mut needs = vec![(
        ".sops.yaml".to_owned(),
        "run `cargo xtask configure` first".to_owned(),
    )];
    needs.extend(age_key_need());
    Job {
        name: "bootstrap talos".to_owned(),
        root,
        steps,
        destructive: None,
        needs,
    }
}

fn kubectl(args: &[&str]) -> Cmd {
    Cmd::new("kubectl", args).with_env(Env::Kubeconfig)
}

/// The steps of `bootstrap apps`, from the rendered tree.
pub fn apps_job(root: PathBuf) -> Result<Job, Vec<String>> {
    let mut errors = Vec::new();
    for file in [CRDS_HELMFILE, APPS_HELMFILE] {
        if !root.join(file).is_file() {
            errors.push(format!(
                "{file}: not found\n  help: run `cargo xtask configure` first (it renders bootstrap/)"
            ));
        }
    }
    let namespaces = match namespaces(&root) {
        Ok(ns) => ns,
        Err(mut e) => {
            errors.append(&mut e);
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut steps = vec![Step::WaitNodes {
        ready: kubectl(&[
            "wait",
            "nodes",
            "--for=condition=Ready=True",
            "--all",
            "--timeout=10s",
        ]),
        // Without a CNI the nodes register as NotReady: that is what bootstrap waits for.
        registered: kubectl(&[
            "wait",
            "nodes",
            "--for=condition=Ready=False",
            "--all",
            "--timeout=10s",
        ]),
    }];
    let mut text = String::new();
    for ns in &namespaces {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
        ));
    }
    steps.push(Step::Text {
        what: format!("Namespace {}", namespaces.join(", ")),
        text,
        cmd: kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=bootstrap",
            "--filename=-",
        ]),
    });
    for (file, ns) in SECRETS {
        if root.join(file).is_file() {
            steps.push(Step::Decrypted {
                file: (*file).to_owned(),
                cmd: kubectl(&[
                    "apply",
                    &format!("--namespace={ns}"),
                    "--server-side",
                    "--field-manager=bootstrap",
                    "--filename=-",
                ]),
            });
        }
    }
    steps.push(Step::Crds {
        producer: Cmd::new(
            "helmfile",
            &["--file", CRDS_HELMFILE, "template", "--quiet"],
        )
        .with_env(Env::Kubeconfig),
        consumer: kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--filename=-",
        ]),
    });
    steps.push(Step::Run(
        Cmd::new(
            "helmfile",
            &["--file", APPS_HELMFILE, "sync", "--hide-notes"],
        )
        .with_env(Env::Kubeconfig),
    ));
    let mut needs = age_key_need();
    if std::env::var_os("KUBECONFIG").is_none_or(|v| v.is_empty()) {
        needs.push((
            "kubeconfig".to_owned(),
            "run `cargo xtask talos kubeconfig` (or set KUBECONFIG)".to_owned(),
        ));
    }
    Ok(Job {
        name: "bootstrap apps".to_owned(),
        root,
        steps,
        destructive: None,
        needs,
    })
}

/// The namespaces of `kubernetes/apps/*/`: each directory with a `namespace.yaml` and a
/// `kustomization.yaml`, named by the kustomization's `namespace:` (not always the directory's
/// name: `kubernetes/apps/ai-gateway` holds `envoy-ai-gateway-system`), sorted.
pub fn namespaces(root: &Path) -> Result<Vec<String>, Vec<String>> {
    let apps = Path::new("kubernetes/apps");
    if let Err(e) = schema::repofile::check_no_symlink_under(root, apps) {
        return Err(vec![format!("{}: {e}", apps.display())]);
    }
    let entries = std::fs::read_dir(root.join(apps)).map_err(|e| {
        vec![format!(
            "{}: cannot read: {e}\n  help: run `cargo xtask configure` first",
            apps.display()
        )]
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| apps.join(e.file_name()))
        .collect();
    dirs.sort();
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for dir in dirs {
        let kustomization = dir.join("kustomization.yaml");
        if !root.join(dir.join("namespace.yaml")).is_file() || !root.join(&kustomization).is_file()
        {
            continue;
        }
        let loaded = schema::yaml::load_file_under(root, &kustomization, Limits::MANIFESTS);
        if let Some(d) = loaded.diagnostics.first() {
            errors.push(d.to_string());
            continue;
        }
        let set = loaded
            .documents
            .first()
            .and_then(|d| d.get("namespace"))
            .map(|n| (n.as_str().map(str::to_owned), n.span));
        let name = match set {
            Some((Some(ns), _)) => ns,
            Some((None, span)) => {
                errors.push(format!(
                    "{}:{}:{}: `namespace` is not a string",
                    kustomization.display(),
                    span.line,
                    span.col
                ));
                continue;
            }
            None => dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        if !is_dns_label(&name) {
            errors.push(format!(
                "{}: namespace `{}` is not a valid Kubernetes name\n  help: lowercase letters, digits and `-`, at most 63",
                kustomization.display(),
                schema::terminal_safe(&name)
            ));
            continue;
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The CustomResourceDefinition documents of a multi-document YAML stream (what
/// `yq 'select(.kind == "CustomResourceDefinition")'` keeps), joined again with `---`.
pub fn crd_documents(stream: &str) -> String {
    let mut out = String::new();
    let mut doc = String::new();
    let mut flush = |doc: &mut String| {
        let loaded = schema::yaml::load(doc, Path::new("-"), Limits::MANIFESTS);
        let is_crd = loaded.diagnostics.is_empty()
            && loaded
                .documents
                .first()
                .and_then(|d| d.get("kind"))
                .and_then(|k| k.as_str())
                == Some("CustomResourceDefinition");
        if is_crd {
            out.push_str("---\n");
            out.push_str(doc);
        }
        doc.clear();
    };
    for line in stream.split_inclusive('\n') {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            flush(&mut doc);
            continue;
        }
        doc.push_str(line);
    }
    flush(&mut doc);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_custom_resource_definitions() {
        let stream = "---\n# Source: a/crds.yaml\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: a.example.com\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n---\nkind: CustomResourceDefinition\nmetadata:\n  name: b.example.com\n";
        let crds = crd_documents(stream);
        assert_eq!(crds.matches("---\n").count(), 2, "{crds}");
        assert!(crds.contains("a.example.com") && crds.contains("b.example.com"));
        assert!(!crds.contains("ConfigMap"));
        assert_eq!(crd_documents("kind: Secret\n"), "");
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("envoy-ai-gateway-system"));
        for bad in ["", "-a", "a-", "A", "a b", "a\nkind: x", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad:?}");
        }
    }
}
