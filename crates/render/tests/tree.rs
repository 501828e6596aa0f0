//! Golden snapshots of the whole rendered tree (every file, in memory, secrets as their fake
//! plaintext test values) for the public, private and single-node configurations.
//!
//! `cargo insta review` shows what a template change does to the output. Inputs are the fake
//! ones of `common::fake_inputs()` plus the Talos patch lists `xtask` hands over
//! (`talos_patches` below), so `talos/talconfig.yaml` is rendered as in a real run.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use render::{Inputs, Rendered};

/// `Inputs.talos_patches` as `xtask` fills it: for each directory under
/// `templates/{overrides,config}/talos/patches/`, the output paths of its `*.yaml.j2` templates
/// relative to `talos/` (`patches/global/machine-files.yaml`), sorted, overrides merged in.
fn talos_patches(templates: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for input in ["overrides", "config"] {
        let Ok(dirs) = std::fs::read_dir(templates.join(input).join("talos/patches")) else {
            continue;
        };
        for dir in dirs.flatten().filter(|d| d.path().is_dir()) {
            let dir_name = dir.file_name().to_string_lossy().into_owned();
            for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                if let Some(out_name) = name.strip_suffix(".j2")
                    && out_name.ends_with(".yaml")
                    && !name.ends_with(".partial.yaml.j2")
                {
                    let entry = out.entry(dir_name.clone()).or_default();
                    let path = format!("patches/{dir_name}/{out_name}");
                    if !entry.contains(&path) {
                        entry.push(path);
                    }
                }
            }
        }
    }
    out.values_mut().for_each(|v| v.sort());
    out
}

fn render(cluster: &str, nodes: &str) -> Rendered {
    let root = common::repo_root();
    let outcome = schema::load(&root.join(cluster), &root.join(nodes));
    let config = outcome
        .config
        .unwrap_or_else(|| panic!("{cluster} is invalid"));
    let inputs = Inputs {
        talos_patches: talos_patches(&root.join("templates")),
        ..common::fake_inputs()
    };
    render::render_templates(&root.join("templates"), &config.context(), &inputs).unwrap_or_else(
        |d| {
            panic!(
                "{cluster}: {}",
                d.iter().map(|d| d.render(None)).collect::<String>()
            )
        },
    )
}

#[test]
fn public_tree() {
    let r = render(".github/tests/public.yaml", ".github/tests/nodes.yaml");
    insta::assert_snapshot!("public", common::tree_text(&r));
}

#[test]
fn private_tree() {
    let r = render(".github/tests/private.yaml", ".github/tests/nodes.yaml");
    insta::assert_snapshot!("private", common::tree_text(&r));
}

#[test]
fn single_node_tree() {
    let r = render(
        "crates/render/tests/configs/single-node.yaml",
        "crates/render/tests/configs/single-node-nodes.yaml",
    );
    insta::assert_snapshot!("single_node", common::tree_text(&r));
}
