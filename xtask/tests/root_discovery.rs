//! Every command finds the repository root from a subdirectory (getting-started itself says
//! `cd talos`), `init` never makes a second set of key files below the root, and the key files'
//! `.gitignore` patterns match at any depth.
#![allow(clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Scratch, ok, repo, xtask};

/// A scratch repository shaped like one made from the template: the workspace markers, the
/// seed's test config as cluster.yaml/nodes.yaml, and a `talos/` subdirectory.
fn scratch_repo(name: &str) -> Scratch {
    let dir = Scratch::new(name);
    let root = dir.path();
    std::fs::write(root.join("Cargo.toml"), "[workspace]\n").unwrap();
    std::fs::create_dir_all(root.join("xtask")).unwrap();
    std::fs::write(root.join("xtask/Cargo.toml"), "[package]\n").unwrap();
    std::fs::create_dir_all(root.join("talos/patches")).unwrap();
    dir
}

fn copy_seed_config(root: &Path) {
    std::fs::copy(
        repo().join(".github/tests/public.yaml"),
        root.join("cluster.yaml"),
    )
    .unwrap();
    std::fs::copy(
        repo().join(".github/tests/nodes.yaml"),
        root.join("nodes.yaml"),
    )
    .unwrap();
}

#[test]
fn validate_from_a_subdirectory_reads_the_root_config() {
    let dir = scratch_repo("root-validate");
    copy_seed_config(dir.path());
    let sub = dir.path().join("talos/patches");
    let stderr = ok(&["validate"], &sub);
    assert!(stderr.contains("are valid"), "{stderr}");
    assert!(
        stderr.contains(&dir.path().join("cluster.yaml").display().to_string()),
        "the message names the root's cluster.yaml: {stderr}"
    );

    // At the root itself the paths stay as the user types them.
    let stderr = ok(&["validate"], dir.path());
    assert!(
        stderr.contains("cluster.yaml and nodes.yaml are valid"),
        "{stderr}"
    );
}

#[test]
fn a_broken_root_config_is_reported_from_a_subdirectory_not_missing() {
    let dir = scratch_repo("root-broken");
    copy_seed_config(dir.path());
    std::fs::write(dir.path().join("cluster.yaml"), "cluster_api_addr: [\n").unwrap();
    let out = xtask(&["validate"], &dir.path().join("talos"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("cargo xtask init"), "{stderr}");
}

#[test]
fn init_from_a_subdirectory_creates_the_files_at_the_root_only() {
    let dir = scratch_repo("root-init");
    let root = dir.path();
    // init copies the samples and renders .sops.yaml from the real template's files.
    for file in ["cluster.sample.yaml", "nodes.sample.yaml"] {
        std::fs::copy(repo().join(file), root.join(file)).unwrap();
    }
    common::copy_dir(&repo().join("templates"), &root.join("templates"));
    let out = xtask(&["init"], &root.join("talos"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for file in [
        "cluster.yaml",
        "nodes.yaml",
        "age.key",
        "github-push-token.txt",
    ] {
        assert!(root.join(file).is_file(), "{file} at the root: {stderr}");
        assert!(
            !root.join("talos").join(file).exists(),
            "no {file} in talos/: {stderr}"
        );
    }
}

#[test]
fn init_refuses_a_directory_below_the_root_and_a_guess_outside_any_repository() {
    let dir = scratch_repo("root-init-refuse");
    let out = xtask(&["init", "--dir", "talos"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not its root"), "{stderr}");
    assert!(!dir.path().join("talos/age.key").exists());

    let outside = Scratch::new("root-init-outside");
    let out = xtask(&["init"], outside.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pass --dir"), "{stderr}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn key_file_patterns_in_gitignore_match_at_any_depth() {
    let Ok(version) = Command::new("git").arg("--version").output() else {
        common::skip_or_fail("git is not installed");
        return;
    };
    assert!(version.status.success());
    let dir = Scratch::new("root-gitignore");
    let root = dir.path();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .unwrap()
    };
    assert!(git(&["init", "-q"]).status.success());
    std::fs::copy(repo().join(".gitignore"), root.join(".gitignore")).unwrap();
    for secret in [
        "age.key",
        "github-deploy.key",
        "github-deploy.key.pub",
        "github-push-token.txt",
        "cloudflare-tunnel.json",
        "kubeconfig",
        "talosconfig",
    ] {
        for at in [
            secret.to_owned(),
            format!("talos/{secret}"),
            format!("a/b/{secret}"),
        ] {
            let out = git(&["check-ignore", "-q", "--no-index", &at]);
            assert_eq!(out.status.code(), Some(0), "{at} is not ignored");
        }
    }
    // The e2e test config is committed: cluster.yaml stays anchored to the root.
    assert_eq!(
        git(&["check-ignore", "-q", "--no-index", "e2e/cluster.yaml"])
            .status
            .code(),
        Some(1)
    );
}
