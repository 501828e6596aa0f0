//! `cargo xtask talos …` and `cargo xtask bootstrap …` on the rendered example
//! (`configure --example`): the exact plans, the preflight against a fake PATH, and the runner
//! against fake tools (shell scripts that record their arguments, working directory and
//! standard input). Real talhelper/talosctl/kubectl/helmfile calls cannot run here: there are no
//! Talos nodes and no cluster on the machines these tests run on.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Scratch, ok, repo, snapshot};

/// A rendered example repository.
fn example(name: &str) -> Scratch {
    let dir = Scratch::new(name);
    ok(
        &[
            "configure",
            "--example",
            "--out",
            dir.path().to_str().unwrap(),
            "--no-verify",
        ],
        &repo(),
    );
    dir
}

/// Runs xtask with exactly `path` as PATH, no KUBECONFIG / SOPS_AGE_KEY_FILE from the outside,
/// and stdin closed.
fn run(args: &[&str], root: &Path, path: &Path, extra_env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(args)
        .arg("--root")
        .arg(root)
        .current_dir(root)
        .env("PATH", path)
        .env_remove("KUBECONFIG")
        .env_remove("SOPS_AGE_KEY_FILE")
        .stdin(Stdio::null());
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An executable shell script `name` in `dir` (it finds coreutils itself: xtask gives it the
/// fake PATH).
fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nPATH=/usr/bin:/bin\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A fake tool that prints `version` for its version query and otherwise appends one line
/// `cwd-basename: args` to `log` (and its stdin, when `stdin_to` is given, to that file + N).
fn recorder(dir: &Path, name: &str, version: &str, log: &Path) {
    script(
        dir,
        name,
        &format!(
            "case \"$*\" in *version*) echo '{version}'; exit 0;; esac\n\
             echo \"$(basename \"$PWD\"): {name} $*\" >> '{}'",
            log.display()
        ),
    );
}

/// The version tools.toml pins for `tool` (read from the file, not repeated here).
fn pinned(tool: &str) -> String {
    let manifest = std::fs::read_to_string(repo().join("tools.toml")).unwrap();
    manifest
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{tool} = \"")))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("tools.toml pins no {tool}"))
        .to_owned()
}

const TC: &str = "--talosconfig=./clusterconfig/talosconfig";
const IMAGE: &str = "factory.talos.dev/installer-secureboot/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

#[test]
fn plans_are_the_exact_commands_and_need_no_tools() {
    let ex = example("cluster-plans");
    let empty = Scratch::new("cluster-plans-path");
    let plan = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push("--plan");
        let out = run(&all, ex.path(), empty.path(), &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let talos = |lines: &[String]| {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("  {}. {l}\n", i + 1))
            .collect::<String>()
    };
    let tc = |sub: &str, rest: &str| format!("cd talos && talosctl {sub} {TC} {rest}");
    let retry = "   # repeated every 10s until it succeeds";
    let seal = "(cd talos && talhelper gensecret) | <seal in memory with .sops.yaml> > talos/talsecret.sops.yaml".to_owned();
    let genconfig = "cd talos && talhelper genconfig   # env: SOPS_AGE_KEY_FILE".to_owned();
    let apply = |n: u8, rest: &str| {
        tc(
            "apply-config",
            &format!("--nodes=10.10.10.1{n} --file=./clusterconfig/kubernetes-k8s-{n}.yaml {rest}"),
        )
    };
    let bootstrap = format!("{}{retry}", tc("bootstrap", "--nodes=10.10.10.10"));
    let kubeconfig = format!(
        "{}{retry}",
        tc("kubeconfig", "--nodes=10.10.10.10 .. --force")
    );

    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (vec!["talos", "generate-config"], vec![seal.clone(), genconfig.clone()]),
        (vec!["talos", "apply-node", "k8s-0"], vec![apply(0, "--mode=auto")]),
        // By address, with the first-install flags.
        (
            vec!["talos", "apply-node", "10.10.10.11", "--insecure", "--mode", "no-reboot"],
            vec![apply(1, "--mode=no-reboot --insecure")],
        ),
        (vec!["talos", "bootstrap"], vec![bootstrap.clone()]),
        (vec!["talos", "kubeconfig"], vec![kubeconfig.clone()]),
        (
            vec!["talos", "upgrade-node", "k8s-1"],
            vec![tc("upgrade", &format!("--nodes=10.10.10.11 --image={IMAGE}:v1.12.6 --timeout=10m"))],
        ),
        (
            vec!["talos", "upgrade-k8s"],
            vec![tc("upgrade-k8s", "--nodes=10.10.10.10 --to=v1.35.4")],
        ),
        (
            vec!["talos", "reset"],
            (0..2)
                .map(|n| tc("reset", &format!("--nodes=10.10.10.1{n} --reboot --system-labels-to-wipe=STATE --system-labels-to-wipe=EPHEMERAL --graceful=false --wait=false")))
                .collect(),
        ),
        (
            vec!["talos", "reset", "--wipe-all"],
            (0..2)
                .map(|n| tc("reset", &format!("--nodes=10.10.10.1{n} --reboot --graceful=false --wait=false")))
                .collect(),
        ),
        (
            vec!["bootstrap", "talos"],
            vec![
                seal,
                genconfig,
                apply(0, "--mode=auto --insecure"),
                apply(1, "--mode=auto --insecure"),
                bootstrap,
                kubeconfig,
            ],
        ),
    ];
    for (args, lines) in cases {
        let name = format!("{} {}", args[0], args[1]);
        assert_eq!(
            plan(&args),
            format!("{name}: plan (nothing is run)\n{}", talos(&lines)),
            "{args:?}"
        );
    }

    // bootstrap apps: the namespaces come from kubernetes/apps/*/kustomization.yaml (ai-gateway
    // holds envoy-ai-gateway-system); the example has no deploy key (a public repository).
    let k = "   # env: KUBECONFIG";
    let apply_ns = |ns: &str| {
        format!(
            "kubectl apply --namespace={ns} --server-side --field-manager=bootstrap --filename=-{k}"
        )
    };
    let apps = [
        format!(
            "kubectl wait nodes --for=condition=Ready=True --all --timeout=10s || kubectl wait nodes --for=condition=Ready=False --all --timeout=10s{k}{retry}"
        ),
        format!(
            "<Namespace envoy-ai-gateway-system, cert-manager, default, flux-system, kube-system, network> | kubectl apply --server-side --field-manager=bootstrap --filename=-{k}"
        ),
        format!(
            "<decrypt bootstrap/sops-age.sops.yaml in memory> | {}",
            apply_ns("flux-system")
        ),
        format!(
            "<decrypt kubernetes/components/sops/cluster-secrets.sops.yaml in memory> | {}",
            apply_ns("flux-system")
        ),
        format!(
            "<decrypt kubernetes/apps/kube-system/proxmox-ccm/app/secret.sops.yaml in memory> | {}",
            apply_ns("kube-system")
        ),
        format!(
            "helmfile --file bootstrap/helmfile.d/00-crds.yaml template --quiet | <CustomResourceDefinition documents only> | kubectl apply --server-side --force-conflicts --filename=-{k}"
        ),
        format!("helmfile --file bootstrap/helmfile.d/01-apps.yaml sync --hide-notes{k}"),
    ];
    assert_eq!(
        plan(&["bootstrap", "apps"]),
        format!("bootstrap apps: plan (nothing is run)\n{}", talos(&apps))
    );
    // An existing secret is never replaced, and the plan says so.
    std::fs::write(ex.path().join("talos/talsecret.sops.yaml"), "x").unwrap();
    assert!(
        plan(&["talos", "generate-config"])
            .contains("talos/talsecret.sops.yaml   # skipped: it exists (never replaced)")
    );
}

#[test]
fn preflight_names_each_missing_tool_with_its_pin_and_exits_2() {
    let ex = example("cluster-preflight");
    let bin = Scratch::new("cluster-preflight-bin");
    let log = bin.path().join("calls.log");
    // talosctl present but older than the pin; talhelper missing.
    recorder(bin.path(), "talosctl", "Client:\n\tTag: v1.11.0", &log);
    let out = run(&["bootstrap", "talos"], ex.path(), bin.path(), &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "[MISS] talhelper: not found on PATH; needs {} (pinned in tools.toml:",
            pinned("talhelper")
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "[WARN] talosctl ({}) reports v1.11.0, but tools.toml pins {}",
            bin.path().join("talosctl").display(),
            pinned("talosctl")
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of 2 tools missing; nothing was run"),
        "{stderr}"
    );
    assert!(!log.exists(), "a tool ran although the preflight failed");
    assert!(!ex.path().join("talos/talsecret.sops.yaml").exists());

    // bootstrap apps needs kubectl, helmfile and helm, and a kubeconfig.
    let out = run(&["bootstrap", "apps"], ex.path(), bin.path(), &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for tool in ["kubectl", "helmfile", "helm"] {
        assert!(
            stderr.contains(&format!(
                "[MISS] {tool}: not found on PATH; needs {}",
                pinned(tool)
            )),
            "{tool}: {stderr}"
        );
    }
    assert!(
        stderr.contains("kubeconfig: not found\n  help: run `cargo xtask talos kubeconfig`"),
        "{stderr}"
    );
}

#[test]
fn runs_talosctl_with_the_planned_arguments() {
    let ex = example("cluster-run");
    let bin = Scratch::new("cluster-run-bin");
    let log = bin.path().join("calls.log");
    recorder(
        bin.path(),
        "talosctl",
        &format!("Client:\n\tTag: {}", pinned("talosctl")),
        &log,
    );
    // Before generate-config there is nothing to apply: exit 2, nothing run.
    let out = run(
        &["talos", "apply-node", "k8s-1"],
        ex.path(),
        bin.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("talos/clusterconfig/talosconfig: not found\n  help: run `cargo xtask talos generate-config` first"));
    assert!(!log.exists());

    std::fs::create_dir_all(ex.path().join("talos/clusterconfig")).unwrap();
    for f in [
        "talosconfig",
        "kubernetes-k8s-0.yaml",
        "kubernetes-k8s-1.yaml",
    ] {
        std::fs::write(ex.path().join("talos/clusterconfig").join(f), "fake").unwrap();
    }
    let out = run(
        &["talos", "apply-node", "k8s-1"],
        ex.path(),
        bin.path(),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!(
            "talos: talosctl apply-config {TC} --nodes=10.10.10.11 --file=./clusterconfig/kubernetes-k8s-1.yaml --mode=auto\n"
        )
    );

    // A destructive command asks first; with stdin closed and no --yes it refuses.
    std::fs::remove_file(&log).unwrap();
    let out = run(&["talos", "reset"], ex.path(), bin.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("this DESTROYS the cluster: k8s-0, k8s-1 reset"),
        "{stderr}"
    );
    assert!(stderr.contains("pass --yes"), "{stderr}");
    assert!(!log.exists(), "reset ran without confirmation");
    let out = run(&["talos", "reset", "--yes"], ex.path(), bin.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);

    // A failing command stops the run with exit 1.
    script(
        bin.path(),
        "talosctl",
        &format!(
            "case \"$*\" in *version*) echo {}; exit 0;; esac; exit 3",
            pinned("talosctl")
        ),
    );
    let out = run(
        &["talos", "upgrade-k8s", "--yes"],
        ex.path(),
        bin.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("step 1 failed: `talosctl upgrade-k8s"),
        "{}",
        text(&out.stderr)
    );

    // An unknown node is named with the ones that exist.
    let out = run(
        &["talos", "upgrade-node", "k8s-9", "--plan"],
        ex.path(),
        bin.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no node `k8s-9` in talos/talconfig.yaml\n  help: name one of: k8s-0 (10.10.10.10), k8s-1 (10.10.10.11)"), "{}", text(&out.stderr));
}

#[test]
fn generate_config_seals_the_talos_secrets_without_a_plaintext_file() {
    let ex = example("cluster-seal");
    let bin = Scratch::new("cluster-seal-bin");
    let log = bin.path().join("calls.log");
    script(
        bin.path(),
        "talhelper",
        &format!(
            "case \"$*\" in *version*) echo 'talhelper version {}'; exit 0;; esac\n\
             if [ \"$1\" = gensecret ]; then printf 'cluster:\\n  secret: plain-talos-secret\\n'; exit 0; fi\n\
             echo \"$(basename \"$PWD\"): talhelper $* key=$SOPS_AGE_KEY_FILE\" >> '{}'",
            pinned("talhelper").trim_start_matches('v'),
            log.display()
        ),
    );
    let out = run(&["talos", "generate-config"], ex.path(), bin.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!(
            "talos: talhelper genconfig key={}\n",
            ex.path().join("age.key").display()
        )
    );
    let sealed = std::fs::read_to_string(ex.path().join("talos/talsecret.sops.yaml")).unwrap();
    assert!(
        !sealed.contains("plain-talos-secret") && sealed.contains("ENC[AES256_GCM"),
        "{sealed}"
    );
    // The plaintext exists nowhere in the tree.
    for (path, bytes) in snapshot(ex.path()) {
        assert!(
            !text(&bytes).contains("plain-talos-secret"),
            "plaintext in {path}"
        );
    }
    // It opens with the repository's key.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["secrets", "decrypt", "--age-key-file"])
        .arg(ex.path().join("age.key"))
        .arg(ex.path().join("talos/talsecret.sops.yaml"))
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains("secret: plain-talos-secret"),
        "{}",
        text(&out.stderr)
    );
    // A second run keeps the sealed file byte for byte.
    let out = run(&["talos", "generate-config"], ex.path(), bin.path(), &[]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(ex.path().join("talos/talsecret.sops.yaml")).unwrap(),
        sealed
    );
}

#[test]
fn bootstrap_apps_pipes_decrypted_secrets_and_only_crds_into_kubectl() {
    let ex = example("cluster-apps");
    let bin = Scratch::new("cluster-apps-bin");
    let log = bin.path().join("calls.log");
    let stdins = bin.path().join("stdin");
    std::fs::create_dir_all(&stdins).unwrap();
    // kubectl records each call's arguments and standard input (in the test's own scratch
    // directory: these are the example's fake credentials).
    script(
        bin.path(),
        "kubectl",
        &format!(
            "case \"$*\" in *'version --client'*) echo 'Client Version: {}'; exit 0;; esac\n\
             case \"$*\" in wait*) echo \"kubectl $* KUBECONFIG=$KUBECONFIG\" >> '{log}'; exit 0;; esac\n\
             n=$(ls '{stdins}' | wc -l); cat > '{stdins}/'$n; echo \"kubectl $* <stdin $n\" >> '{log}'",
            pinned("kubectl"),
            log = log.display(),
            stdins = stdins.display()
        ),
    );
    script(
        bin.path(),
        "helmfile",
        &format!(
            "case \"$*\" in *--version*) echo 'helmfile version {}'; exit 0;; esac\n\
             echo \"helmfile $*\" >> '{}'\n\
             case \"$*\" in *template*) printf -- '---\\napiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: not-a-crd\\n---\\napiVersion: apiextensions.k8s.io/v1\\nkind: CustomResourceDefinition\\nmetadata:\\n  name: gateways.example.io\\n';; esac",
            pinned("helmfile").trim_start_matches('v'),
            log.display()
        ),
    );
    script(bin.path(), "helm", &format!("echo {}", pinned("helm")));
    let kubeconfig = ex.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "fake").unwrap();
    let before = snapshot(ex.path());
    let out = run(&["bootstrap", "apps"], ex.path(), bin.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let calls = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "kubectl wait nodes --for=condition=Ready=True --all --timeout=10s KUBECONFIG={}",
                kubeconfig.display()
            )
            .as_str(),
            "kubectl apply --server-side --field-manager=bootstrap --filename=- <stdin 0",
            "kubectl apply --namespace=flux-system --server-side --field-manager=bootstrap --filename=- <stdin 1",
            "kubectl apply --namespace=flux-system --server-side --field-manager=bootstrap --filename=- <stdin 2",
            "kubectl apply --namespace=kube-system --server-side --field-manager=bootstrap --filename=- <stdin 3",
            "helmfile --file bootstrap/helmfile.d/00-crds.yaml template --quiet",
            "kubectl apply --server-side --force-conflicts --filename=- <stdin 4",
            "helmfile --file bootstrap/helmfile.d/01-apps.yaml sync --hide-notes",
        ]
    );
    let stdin = |n: usize| std::fs::read_to_string(stdins.join(n.to_string())).unwrap();
    assert!(
        stdin(0).contains("kind: Namespace\nmetadata:\n  name: envoy-ai-gateway-system\n"),
        "{}",
        stdin(0)
    );
    assert_eq!(stdin(0).matches("kind: Namespace").count(), 6);
    for n in 1..=3 {
        let secret = stdin(n);
        assert!(secret.contains("kind: Secret"), "{secret}");
        assert!(
            !secret.contains("ENC[") && !secret.contains("sops:"),
            "not decrypted: {secret}"
        );
    }
    assert!(
        stdin(1).contains("age.agekey"),
        "the sops-age key Secret: {}",
        stdin(1)
    );
    assert!(
        stdin(4).contains("gateways.example.io") && !stdin(4).contains("not-a-crd"),
        "{}",
        stdin(4)
    );
    // Nothing was written into the repository (no decrypted file, not even for a moment that
    // outlived the run).
    assert_eq!(snapshot(ex.path()), before);
}

#[test]
fn the_operator_guide_documents_every_action_and_tool() {
    let guide = std::fs::read_to_string(repo().join("docs/operator-guide.md")).unwrap();
    for action in [
        "talos generate-config",
        "talos apply-node",
        "talos bootstrap",
        "talos kubeconfig",
        "talos upgrade-node",
        "talos upgrade-k8s",
        "talos reset",
        "bootstrap talos",
        "bootstrap apps",
    ] {
        assert!(
            guide.contains(&format!("`cargo xtask {action}")),
            "{action} is not documented"
        );
    }
    let manifest = std::fs::read_to_string(repo().join("tools.toml")).unwrap();
    let section = &guide[guide.find("## Cluster commands").unwrap()..];
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(" = \""))
    {
        let tool = line.split(" = ").next().unwrap();
        assert!(
            section.contains(&format!("`{tool}`")),
            "{tool} of tools.toml is not named"
        );
    }
}
