//! `kubectl kustomize` is the independent oracle for the in-process kustomize subset: every
//! kustomization directory of the base tree must build to the same objects with both.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn kustomization_dirs(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let abs = root.join(dir);
    let kfile = abs.join("kustomization.yaml");
    if kfile.is_file() {
        let text = std::fs::read_to_string(&kfile).unwrap();
        if !text.contains("kind: Component") {
            out.push(dir.to_path_buf());
        }
    }
    let mut entries: Vec<_> = std::fs::read_dir(&abs).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if e.file_type().unwrap().is_dir() {
            kustomization_dirs(root, &dir.join(e.file_name()), out);
        }
    }
}

#[test]
#[allow(clippy::print_stderr)]
fn every_kustomization_directory_builds_like_kubectl_kustomize() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("REQUIRE_ORACLES").as_deref() != Ok("1"),
            "kubectl is required (REQUIRE_ORACLES=1)"
        );
        eprintln!("SKIP: kubectl not found; install kubectl to run the kustomize oracle test");
        return;
    }
    let features = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kustomize");
    let mut total = 0;
    for (root, at_least) in [(common::tree::BASE, 9), (features, 2)] {
        let root = Path::new(root);
        let mut dirs = Vec::new();
        kustomization_dirs(root, Path::new("kubernetes"), &mut dirs);
        assert!(dirs.len() >= at_least, "found only {dirs:?}");
        total += dirs.len();
        compare(root, &dirs);
    }
    eprintln!("{total} kustomization directories build identically");
}

fn compare(root: &Path, dirs: &[PathBuf]) {
    for dir in dirs {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(root.join(dir))
            .output()
            .expect("kubectl kustomize");
        assert!(
            out.status.success(),
            "kubectl kustomize {} failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let loaded = schema::yaml::load(
            &text,
            Path::new("<kubectl>"),
            schema::yaml::Limits::MANIFESTS,
        );
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let mut theirs: Vec<Value> = loaded
            .documents
            .iter()
            .filter(|d| !d.is_null())
            .map(|d| d.to_json())
            .collect();
        let mut ours = verify::build_kustomization(root, dir)
            .unwrap_or_else(|e| panic!("our build of {} fails: {e:?}", dir.display()));
        let key = |v: &Value| v.to_string();
        theirs.sort_by_key(key);
        ours.sort_by_key(key);
        assert_eq!(ours, theirs, "{} builds differently", dir.display());
    }
}
