//! The repository is untrusted input: attacks a pull request could carry, replayed against the
//! real binary on a configured scratch repository (the bundled example, throwaway keys).
//!
//! Each test is one class of attack; the defence itself is unit-tested in the crate that owns it
//! (`schema::repofile`, `schema::yaml`, `render::output`, …). What is checked here is what the
//! user would see: no secret byte on stdout or stderr, nothing removed that configure did not
//! write, an exit code of 1 or 2 with a located message — never a panic (101), an abort or a hang.

#![allow(clippy::print_stderr)]

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Scratch, ok, repo, xtask};

/// A configured example repository in a scratch directory: its age key and rendered tree.
fn configured(name: &str) -> Scratch {
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
    assert!(dir.path().join("age.key").is_file());
    dir
}

/// The hash a render manifest records for `bytes` (a forged entry needs only this).
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn age_secret(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("age.key"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_owned()
}

/// Asserts the run ended by itself with a finding or a refusal, printed nothing secret and
/// did not panic.
fn refused(out: &Output, secret: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "expected exit 1 or 2, got {:?}\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The secret key, and any long piece of it.
    let tail = &secret[secret.len() - 20..];
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(secret) && !text.contains(tail),
            "secret key printed:\n{text}"
        );
    }
    // verify reports on stdout, the other commands on stderr: return both.
    format!("{stdout}{stderr}")
}

#[test]
fn symlinks_in_the_tree_never_print_what_they_point_at() {
    let dir = configured("symlink-leak");
    let root = dir.path();
    let secret = age_secret(root);
    // A committed symlink under kubernetes/, referenced by a kustomization and not.
    symlink("../../age.key", root.join("kubernetes/apps/notes.yaml")).unwrap();
    let ks = root.join("kubernetes/apps/kustomization.yaml");
    if ks.is_file() {
        let mut text = std::fs::read_to_string(&ks).unwrap();
        text = text.replace("resources:\n", "resources:\n  - ./notes.yaml\n");
        std::fs::write(&ks, text).unwrap();
    }
    let out = xtask(&["verify", root.to_str().unwrap(), "--no-schemas"], &repo());
    let stderr = refused(&out, &secret);
    assert!(stderr.contains("verify::symlink"), "{stderr}");

    // A symlink in place of cluster.yaml, and one at a rendered path ("in the way").
    let cluster = root.join("cluster.yaml");
    symlink(root.join("age.key"), &cluster).unwrap();
    let nodes = repo().join(".github/tests/nodes.yaml");
    let out = xtask(
        &[
            "validate",
            "--config",
            cluster.to_str().unwrap(),
            "--nodes",
            nodes.to_str().unwrap(),
        ],
        &repo(),
    );
    let stderr = refused(&out, &secret);
    assert!(stderr.contains("yaml::symlink"), "{stderr}");
    let talenv = root.join("talos/talenv.yaml");
    std::fs::remove_file(&talenv).unwrap();
    symlink(root.join("age.key"), &talenv).unwrap();
    let out = xtask(
        &[
            "configure",
            "--example",
            "--out",
            root.to_str().unwrap(),
            "--no-verify",
        ],
        &repo(),
    );
    let stderr = refused(&out, &secret);
    assert!(stderr.contains("render::in_the_way"), "{stderr}");
}

#[test]
fn alias_bombs_and_special_files_are_refused_quickly() {
    let dir = Scratch::new("bombs");
    let root = dir.path();
    // 400 KB of text, aliased 100,000 times: 40 GB if expanded.
    let mut bomb = format!("a: &s \"{}\"\nb: [", "x".repeat(400_000));
    bomb.push_str(&vec!["*s"; 100_000].join(","));
    bomb.push_str("]\n");
    std::fs::write(root.join("cluster.yaml"), &bomb).unwrap();
    std::fs::write(root.join("nodes.yaml"), "nodes: []\n").unwrap();
    let started = Instant::now();
    let out = xtask(&["validate"], root);
    let stderr = refused(&out, "AGE-SECRET-KEY-NOT-HERE-AT-ALL-xxxxxxxx");
    assert!(stderr.contains("yaml::too_many_bytes"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60));

    // Devices and FIFOs given or committed as inputs.
    let out = xtask(&["validate", "--config", "/dev/zero"], root);
    let stderr = refused(&out, "AGE-SECRET-KEY-NOT-HERE-AT-ALL-xxxxxxxx");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    let fifo = root.join("fifo.yaml");
    if Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        let out = xtask(&["validate", "--config", fifo.to_str().unwrap()], root);
        refused(&out, "AGE-SECRET-KEY-NOT-HERE-AT-ALL-xxxxxxxx");
    }
}

#[test]
fn a_committed_manifest_cannot_make_configure_delete_what_it_did_not_write() {
    let dir = configured("manifest");
    let root = dir.path();
    // Files whose bytes anyone can predict: a git HEAD, a user's app beside rendered ones.
    let victims = [
        (".git/HEAD", "ref: refs/heads/main\n"),
        ("kubernetes/apps/default/mine/app.yaml", "kind: ConfigMap\n"),
        ("templates/config/x.yaml.j2", "x: 1\n"),
        ("README.md", "# my cluster\n"),
    ];
    let manifest_path = root.join(".render-manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    for (path, text) in victims {
        let abs = root.join(path);
        std::fs::create_dir_all(abs.parent().unwrap()).unwrap();
        std::fs::write(&abs, text).unwrap();
        let hash = sha256_hex(text.as_bytes());
        manifest["files"][path] =
            serde_json::json!({"sha256": hash, "source": "templates/config/x.j2"});
    }
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    for args in [
        vec!["configure", "--example", "--no-verify"],
        vec!["reset", "--yes"],
    ] {
        let mut args: Vec<&str> = args;
        let out_flag = root.to_str().unwrap();
        if args[0] == "configure" {
            args.extend(["--out", out_flag]);
            let out = xtask(&args, &repo());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stderr}");
            assert!(stderr.contains("render::not_ours"), "{stderr}");
        }
        for (path, text) in victims {
            assert_eq!(
                std::fs::read_to_string(root.join(path)).unwrap(),
                text,
                "{path} was touched by {args:?}"
            );
        }
    }
}

#[test]
fn a_wrong_templates_path_refuses_instead_of_pruning_the_tree() {
    let dir = configured("templates-typo");
    let root = dir.path();
    let before = common::snapshot(root);
    for templates in ["", "templats", "/dev/null"] {
        let out = xtask(
            &[
                "configure",
                "--example",
                "--out",
                root.to_str().unwrap(),
                "--templates",
                templates,
            ],
            &repo(),
        );
        let stderr = refused(&out, &age_secret(root));
        assert!(stderr.contains("render::no_templates"), "{stderr}");
        assert_eq!(common::snapshot(root), before, "--templates {templates:?}");
    }
}

#[test]
fn a_second_configure_on_the_same_tree_waits_for_nobody_and_changes_nothing() {
    let dir = configured("lock");
    let root = dir.path();
    let before = common::snapshot(root);
    let lock = render::lock(root).unwrap();
    let out = xtask(
        &["configure", "--example", "--out", root.to_str().unwrap()],
        &repo(),
    );
    let stderr = refused(&out, &age_secret(root));
    assert!(stderr.contains("render::lock"), "{stderr}");
    assert_eq!(common::snapshot(root), before);
    drop(lock);
}

#[test]
fn closed_or_full_output_streams_are_not_a_panic() {
    let dir = configured("epipe");
    let root = dir.path();
    // stdout closed early (`| head -1`): the rest of the output is dropped, no panic.
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["help"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(101));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    // stdout full: a clear error and exit 2.
    if Path::new("/dev/full").exists() {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["help"])
            .stdout(full)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("cannot write to stdout"), "{stderr}");
    }
    // stderr closed while configure reports.
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "configure",
            "--example",
            "--out",
            root.to_str().unwrap(),
            "--no-verify",
        ])
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn terminal_escapes_in_a_config_are_shown_not_obeyed() {
    let dir = Scratch::new("escapes");
    let root = dir.path();
    std::fs::write(
        root.join("cluster.yaml"),
        "node_cidr: \"10.0.0.0/33\u{1b}]0;owned\u{7}\"\n\u{1b}[2J: 1\n",
    )
    .unwrap();
    std::fs::write(root.join("nodes.yaml"), "nodes: []\n").unwrap();
    let out = xtask(&["validate"], root);
    let stderr = refused(&out, "AGE-SECRET-KEY-NOT-HERE-AT-ALL-xxxxxxxx");
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{7}'),
        "{stderr:?}"
    );
    assert!(stderr.contains("\\u{1b}"), "{stderr}");
}

#[test]
fn init_removes_the_key_a_killed_init_left_behind() {
    if Command::new("ssh-keygen").arg("-?").output().is_err() {
        common::skip_or_fail("ssh-keygen is not installed");
        return;
    }
    let dir = Scratch::new("init-leftover");
    let root = dir.path();
    let staging = root.join(".init-4242");
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join("key"), "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
    // A look-alike that is not a staging folder of ours is left alone.
    std::fs::create_dir(root.join(".init-notes")).unwrap();
    ok(&["init", "--dir", root.to_str().unwrap()], &repo());
    assert!(!staging.exists(), "the leftover private key must be gone");
    assert!(root.join(".init-notes").exists());
}

#[test]
fn a_kustomization_cannot_make_verify_print_a_key_file() {
    let dir = configured("key-file");
    let root = dir.path();
    let token = std::fs::read_to_string(root.join("github-push-token.txt")).unwrap();
    // A kustomization a Flux Kustomization builds, listing the key files beside cluster.yaml.
    let ks = root.join("kubernetes/apps/ai-gateway/redis/app/kustomization.yaml");
    let text = std::fs::read_to_string(&ks).unwrap().replace(
        "resources:\n",
        "resources:\n  - ../../../../../github-push-token.txt\n  - ../../../../../cloudflare-tunnel.json\n  - ../../../../../age.key\n",
    );
    std::fs::write(&ks, text).unwrap();
    let out = xtask(&["verify", root.to_str().unwrap(), "--no-schemas"], &repo());
    let text = refused(&out, &age_secret(root));
    assert!(text.contains("verify::key_file"), "{text}");
    assert!(!text.contains(token.trim()), "{text}");
    assert!(!text.contains("TunnelSecret"), "{text}");
}

#[test]
fn an_override_cannot_make_a_user_file_removable() {
    let dir = configured("override-claim");
    let root = dir.path();
    let templates = root.join("my-templates");
    common::copy_dir(&repo().join("templates"), &templates);
    let claim = templates.join("overrides/kubernetes/apps/mine/notes.txt.j2");
    std::fs::create_dir_all(claim.parent().unwrap()).unwrap();
    std::fs::write(&claim, "#% if false %#x#% endif %#").unwrap();
    let mine = root.join("kubernetes/apps/mine/notes.txt");
    std::fs::create_dir_all(mine.parent().unwrap()).unwrap();
    std::fs::write(&mine, "my notes\n").unwrap();
    let manifest_path = root.join(".render-manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let hash = sha256_hex(b"my notes\n");
    manifest["files"]["kubernetes/apps/mine/notes.txt"] = serde_json::json!({"sha256": hash, "source": "templates/overrides/kubernetes/apps/mine/notes.txt.j2"});
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let out = xtask(
        &[
            "configure",
            "--example",
            "--out",
            root.to_str().unwrap(),
            "--templates",
            templates.to_str().unwrap(),
            "--no-verify",
        ],
        &repo(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&mine).unwrap(),
        "my notes\n",
        "{stderr}"
    );
}
