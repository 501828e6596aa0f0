//! Copies of a correct rendered tree, broken one thing at a time.
//!
//! `BASE` is the only line to change to run every mutation test against another correct tree
//! (for example the rendered public example once `crates/render` produces it).

use std::path::{Path, PathBuf};

use serde_json::Value;
use verify::{Report, VerifyConfig};

/// The correct tree the tests start from.
pub const BASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/good");

/// A temporary copy of a tree.
pub struct TempTree {
    dir: tempfile::TempDir,
}

impl TempTree {
    pub fn copy_of(base: &Path) -> TempTree {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_dir(base, dir.path());
        TempTree { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites `file` (relative): `edit` gets every YAML document as JSON and may change,
    /// add or remove documents. The file is written back as JSON documents (valid YAML).
    pub fn mutate(&self, file: &str, edit: impl FnOnce(&mut Vec<Value>)) -> &TempTree {
        let path = self.path().join(file);
        let mut docs = super::load_json(&path);
        edit(&mut docs);
        let text: Vec<String> = docs
            .iter()
            .map(|d| serde_json::to_string_pretty(d).expect("json"))
            .collect();
        std::fs::write(&path, format!("---\n{}\n", text.join("\n---\n"))).expect("write");
        self
    }

    /// Rewrites the object of `kind` named `name`, wherever it is in the tree (so tests do not
    /// depend on the file layout of the base tree).
    pub fn mutate_object(
        &self,
        kind: &str,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) -> &TempTree {
        let file = self
            .find_object(kind, name)
            .unwrap_or_else(|| panic!("no {kind} {name} in the tree"));
        self.mutate(&file, |docs| edit(doc(docs, kind, name)));
        self
    }

    /// The file (relative) holding the object of `kind` named `name`.
    pub fn find_object(&self, kind: &str, name: &str) -> Option<String> {
        let mut stack = vec![self.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&dir).ok()?.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "yaml") {
                    let found = super::load_json(&p)
                        .iter()
                        .any(|d| d["kind"] == kind && d["metadata"]["name"] == name);
                    if found {
                        let rel = p.strip_prefix(self.path()).ok()?;
                        return Some(rel.to_string_lossy().into_owned());
                    }
                }
            }
        }
        None
    }

    /// Replaces a file's text.
    pub fn write(&self, file: &str, text: &str) -> &TempTree {
        let path = self.path().join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
        self
    }

    pub fn remove(&self, file: &str) -> &TempTree {
        let path = self.path().join(file);
        if path.is_dir() {
            std::fs::remove_dir_all(path).expect("rm -r");
        } else {
            std::fs::remove_file(path).expect("rm");
        }
        self
    }

    pub fn verify(&self) -> Report {
        verify::verify(
            self.path(),
            super::schemas(),
            &VerifyConfig::cluster_template(),
        )
    }
}

/// A mutable copy of the base tree.
pub fn base() -> TempTree {
    TempTree::copy_of(Path::new(BASE))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Finds the document of `kind` named `name` in `docs`.
pub fn doc<'a>(docs: &'a mut [Value], kind: &str, name: &str) -> &'a mut Value {
    docs.iter_mut()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// All diagnostics rendered, for assertion messages.
pub fn dump(report: &Report) -> String {
    report
        .diagnostics
        .iter()
        .map(|d| d.render(None))
        .collect::<Vec<_>>()
        .join("")
}
