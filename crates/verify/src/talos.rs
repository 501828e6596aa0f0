//! Talos: every patch file `talos/talconfig.yaml` references (`@./patches/…`) exists in the tree.
//! talhelper reads them when it generates the machine configs; a missing one fails
//! `talhelper genconfig`, after the repository was pushed.

use std::path::Path;

use schema::Diagnostic;
use schema::yaml::Node;

use crate::tree::Tree;

const TALCONFIG: &str = "talos/talconfig.yaml";

pub(crate) fn check(tree: &Tree) -> Vec<Diagnostic> {
    let file = Path::new(TALCONFIG);
    let Some(source) = tree.files.get(file) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for doc in &source.docs {
        let mut lists: Vec<(String, &Node)> = Vec::new();
        if let Some(p) = doc.get("patches") {
            lists.push(("patches".to_owned(), p));
        }
        for role in ["controlPlane", "worker"] {
            if let Some(p) = doc.get(role).and_then(|r| r.get("patches")) {
                lists.push((format!("{role}.patches"), p));
            }
        }
        for (i, node) in doc
            .get("nodes")
            .and_then(Node::as_seq)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if let Some(p) = node.get("patches") {
                lists.push((format!("nodes[{i}].patches"), p));
            }
        }
        for (path, list) in lists {
            for (j, entry) in list.as_seq().unwrap_or_default().iter().enumerate() {
                // Inline patches are YAML text; only `@<path>` names a file.
                let Some(target) = entry.as_str().and_then(|s| s.strip_prefix('@')) else {
                    continue;
                };
                let rel = Path::new("talos").join(target.trim_start_matches("./"));
                if target.contains("..")
                    || tree.files.contains_key(&rel)
                    || tree.root.join(&rel).is_file()
                {
                    continue;
                }
                out.push(
                    Diagnostic::error(
                        "verify::talos_patch_missing",
                        format!("{path}[{j}]"),
                        format!(
                            "talconfig.yaml references patch `{target}`, but {} does not exist; talhelper genconfig fails",
                            rel.display()
                        ),
                    )
                    .at(Some(entry.location(file)))
                    .with_help("render the patch (templates/config/talos/patches/<dir>/<name>.yaml.j2) or remove the reference"),
                );
            }
        }
    }
    out
}
