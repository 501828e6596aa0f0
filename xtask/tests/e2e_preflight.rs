//! `cargo xtask e2e` and `cargo xtask ai-gateway status` check what they can before they build
//! the e2e crate (minutes the first time): a missing tool or an unreachable cluster exits 2 at
//! once, and cargo is never started. `CARGO` points at a fake that leaves a mark if it runs.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Scratch, repo};

fn fake_cargo(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("cargo");
    let mark = dir.join("cargo-ran");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$KUBECONFIG\" > '{}'\nexit 0\n",
            mark.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn run(args: &[&str], dir: &Path, env: &[(&str, &Path)]) -> (Output, Duration) {
    run_in(&repo(), args, dir, env)
}

fn run_in(cwd: &Path, args: &[&str], dir: &Path, env: &[(&str, &Path)]) -> (Output, Duration) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(args)
        .current_dir(cwd)
        .env("CARGO", fake_cargo(dir))
        .env("PATH", dir)
        .env("HOME", dir)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let started = Instant::now();
    let out = c.output().unwrap();
    (out, started.elapsed())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn e2e_without_docker_stops_before_building() {
    let dir = Scratch::new("e2e-preflight");
    let (out, took) = run(&["e2e"], dir.path(), &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for tool in ["docker", "kind", "kubectl", "helm"] {
        assert!(
            err.contains(&format!("[MISS] {tool}: not found on PATH")),
            "{tool}: {err}"
        );
    }
    assert!(err.contains("nothing was built or created"), "{err}");
    assert!(!dir.path().join("cargo-ran").exists(), "cargo was started");
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // A docker CLI without an engine is not enough either.
    let docker = dir.path().join("docker");
    std::fs::write(
        &docker,
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (out, _) = run(&["e2e"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("[FAIL] docker"), "{}", stderr(&out));
    assert!(stderr(&out).contains("Cannot connect to the Docker daemon"));
    assert!(!dir.path().join("cargo-ran").exists());

    // --plan needs no tool: it goes on to the harness (here: the fake cargo).
    let (out, _) = run(&["e2e", "--plan"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(dir.path().join("cargo-ran").exists());
}

#[test]
fn status_with_an_unreachable_cluster_says_so_once_and_exits_2() {
    let dir = Scratch::new("status-unreachable");
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: lab\ncontexts:\n  - name: lab\n    context: {{cluster: lab, user: me}}\nclusters:\n  - name: lab\n    cluster: {{server: 'https://127.0.0.1:{port}'}}\nusers:\n  - name: me\n    user: {{token: fake}}\n"
        ),
    )
    .unwrap();
    let (out, took) = run(
        &["ai-gateway", "status"],
        dir.path(),
        &[("KUBECONFIG", &kubeconfig)],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.matches("cannot reach the cluster").count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "https://127.0.0.1:{port} (context `lab` in {})",
            kubeconfig.display()
        )),
        "{err}"
    );
    assert!(err.contains("help: is the cluster running?"), "{err}");
    assert!(!err.contains("[FAIL]") && out.stdout.is_empty(), "{err}");
    assert!(!dir.path().join("cargo-ran").exists(), "cargo was started");
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // No kubeconfig at all (HOME has no .kube/config): also exit 2, with what to do.
    let (out, _) = run(&["ai-gateway", "status"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no kubeconfig:"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("help: set KUBECONFIG"),
        "{}",
        stderr(&out)
    );

    // A reachable API server (here: a listener that accepts) gets past the preflight to the
    // e2e binary (the fake cargo).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    std::fs::write(
        &kubeconfig,
        std::fs::read_to_string(&kubeconfig)
            .unwrap()
            .replace(&port.to_string(), &open.to_string()),
    )
    .unwrap();
    // A relative KUBECONFIG reaches the binary (which runs from the repository root) as the
    // same file.
    let (out, _) = run_in(
        dir.path(),
        &["ai-gateway", "status"],
        dir.path(),
        &[("KUBECONFIG", Path::new("kubeconfig"))],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("cargo-ran"))
            .unwrap()
            .trim(),
        kubeconfig.display().to_string()
    );
}
