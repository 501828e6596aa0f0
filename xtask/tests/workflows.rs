//! The GitHub workflows this template ships (issue 14): its own (ci, e2e, release) run only in
//! the template's repository, the cluster repository's `cluster-verify` only elsewhere; every
//! action is pinned by commit; and `cluster-verify`'s tool finder works before and after
//! `cargo xtask tidy`, on real git repositories. GitHub itself cannot run here: the workflow's
//! remaining steps (cache, schemas fetch, verify) are the commands the other tests run.
//! zizmor and check-jsonschema's workflow schema run in `.ci/run`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Scratch, git, repo};

const TEMPLATE_OWN: [&str; 3] = ["ci.yaml", "e2e.yaml", "release.yaml"];
const CLUSTER: &str = "cluster-verify.yaml";
const FINDER: &str = ".github/scripts/cluster-verify-tool.sh";

fn workflow(name: &str) -> String {
    std::fs::read_to_string(repo().join(".github/workflows").join(name)).unwrap()
}

/// The job ids of a workflow and the text of each job (jobs are the 2-space keys under `jobs:`).
fn jobs(text: &str) -> Vec<(String, String)> {
    let body = text.split_once("\njobs:\n").expect("jobs:").1;
    let mut out: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        if let Some(id) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !id.starts_with(' ')
            && !id.starts_with('#')
        {
            out.push((id.to_owned(), String::new()));
        } else if let Some((_, job)) = out.last_mut() {
            job.push_str(line);
            job.push('\n');
        }
    }
    out
}

#[test]
fn template_workflows_run_only_in_the_template_repository_and_cluster_verify_only_outside() {
    for name in TEMPLATE_OWN {
        let jobs = jobs(&workflow(name));
        assert!(!jobs.is_empty(), "{name}: no jobs found");
        for (id, job) in jobs {
            assert!(
                job.contains("    if: ${{ vars.SHARED_REPO != '' }}\n"),
                "{name}: job {id} must run only where SHARED_REPO is set (the template's repository)"
            );
        }
    }
    let jobs = jobs(&workflow(CLUSTER));
    assert_eq!(jobs.len(), 1);
    assert!(
        jobs[0]
            .1
            .contains("    if: ${{ vars.SHARED_REPO == '' }}\n")
    );
    // Checks every pull request, needs no secret.
    let text = workflow(CLUSTER);
    assert!(text.contains("\non:\n  pull_request:\n"));
    assert!(!text.contains("secrets."));
    assert!(text.contains("cargo xtask verify"));
    assert!(text.contains("cargo xtask schemas fetch"));
}

#[test]
fn every_action_is_pinned_by_commit_with_its_version() {
    let dir = repo().join(".github/workflows");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(entry.path()).unwrap();
        for (n, line) in text.lines().enumerate() {
            let Some((_, uses)) = line.split_once("uses: ") else {
                continue;
            };
            seen += 1;
            let (action, rest) = uses.split_once('@').expect("action@ref");
            let (sha, comment) = rest.split_once(" # ").unwrap_or((rest, ""));
            assert!(
                sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                "{name}:{}: {action} is not pinned to a full commit",
                n + 1
            );
            assert!(
                comment.starts_with('v'),
                "{name}:{}: {action}@{sha} needs its version as `# vX.Y.Z`",
                n + 1
            );
        }
    }
    assert!(seen >= 8, "found only {seen} `uses:` lines");
}

#[test]
fn tidy_moves_the_template_workflows_and_keeps_cluster_verify() {
    let dir = Scratch::new("workflows-tidy");
    let root = dir.path();
    std::fs::write(root.join(".render-manifest.json"), "{}").unwrap();
    for name in TEMPLATE_OWN.iter().chain([&CLUSTER]) {
        let to = root.join(".github/workflows").join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, workflow(name)).unwrap();
    }
    std::fs::create_dir_all(root.join(".github/scripts")).unwrap();
    std::fs::copy(repo().join(FINDER), root.join(FINDER)).unwrap();
    common::ok(&["tidy", "--root", root.to_str().unwrap(), "--yes"], root);
    for name in TEMPLATE_OWN {
        assert!(
            !root.join(".github/workflows").join(name).exists(),
            "{name}"
        );
    }
    assert!(root.join(".github/workflows").join(CLUSTER).exists());
    assert!(root.join(FINDER).exists());
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Runs the finder as the workflow does; returns its output, the `dir=` it wrote, and stdout.
fn find_tool(root: &Path, runner_temp: &Path) -> (Output, String) {
    let github_output = runner_temp.join("github-output");
    let _ = std::fs::remove_file(&github_output);
    let out = Command::new("bash")
        .arg(repo().join(FINDER))
        .current_dir(root)
        .env("GITHUB_OUTPUT", &github_output)
        .env("RUNNER_TEMP", runner_temp)
        .output()
        .unwrap();
    let written = std::fs::read_to_string(&github_output).unwrap_or_default();
    (out, written)
}

/// A cluster repository as `configure` leaves it, with the template's workspace committed.
fn configured_repo(root: &Path) {
    for (rel, text) in [
        ("Cargo.toml", "[workspace]\nmembers = [\"xtask\"]\n"),
        ("Cargo.lock", "version = 4\n"),
        ("rust-toolchain.toml", "[toolchain]\n"),
        (".cargo/config.toml", "[alias]\n"),
        ("crates/verify/src/pins.rs", "// pins\n"),
        ("xtask/Cargo.toml", "[package]\nname = \"xtask\"\n"),
        ("e2e/Cargo.toml", "[package]\nname = \"e2e\"\n"),
        (".render-manifest.json", "{}\n"),
        ("kubernetes/flux/cluster/ks.yaml", "kind: Kustomization\n"),
    ] {
        write(root, rel, text);
    }
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-qm", "configured"]);
}

#[test]
fn cluster_verify_finds_its_tool_before_and_after_tidy() {
    let dir = Scratch::new("workflows-finder");
    let temp = dir.path().join("runner-temp");
    std::fs::create_dir_all(&temp).unwrap();
    let root = dir.path().join("repo");
    std::fs::create_dir_all(&root).unwrap();

    // Not configured yet: nothing to verify, and that is not a failure.
    write(&root, "README.md", "x\n");
    let (out, written) = find_tool(&root, &temp);
    assert!(out.status.success());
    assert_eq!(written, "dir=\n");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not configured yet"));

    // Before tidy: the repository's own workspace.
    configured_repo(&root);
    let (out, written) = find_tool(&root, &temp);
    assert!(out.status.success());
    assert_eq!(written, format!("dir={}\n", root.display()));

    // After tidy (the workspace removed and committed): the last commit's workspace.
    for gone in [
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain.toml",
        ".cargo",
        "crates",
        "xtask",
        "e2e",
    ] {
        git(&root, &["rm", "-rq", gone]);
    }
    git(&root, &["commit", "-qm", "tidy"]);
    write(&root, "kubernetes/apps/x.yaml", "later: change\n");
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-qm", "a later change"]);
    let (out, written) = find_tool(&root, &temp);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tool = temp.join("cluster-verify-tool");
    assert_eq!(written, format!("dir={}\n", tool.display()));
    assert_eq!(
        std::fs::read_to_string(tool.join("xtask/Cargo.toml")).unwrap(),
        "[package]\nname = \"xtask\"\n"
    );
    for rel in [
        ".cargo/config.toml",
        "crates/verify/src/pins.rs",
        "e2e/Cargo.toml",
    ] {
        assert!(tool.join(rel).is_file(), "{rel} missing from the tool");
    }
    assert!(
        !tool.join("kubernetes").exists(),
        "only the workspace is extracted"
    );

    // Tidied before the workspace was ever committed: a clear error, not a silent pass.
    let bare = dir.path().join("bare");
    write(&bare, ".render-manifest.json", "{}\n");
    git(&bare, &["init", "-q", "-b", "main"]);
    git(&bare, &["add", "-A"]);
    git(&bare, &["commit", "-qm", "tidied from the start"]);
    let (out, written) = find_tool(&bare, &temp);
    assert!(!out.status.success());
    assert!(written.is_empty());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("::error::") && stdout.contains("help:"),
        "{stdout}"
    );
}
