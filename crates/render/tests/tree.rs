//! Golden snapshots of the whole rendered tree (every file, in memory, secrets as their fake
//! plaintext test values) for the public, private and single-node configurations.
//!
//! `cargo insta review` shows what a template change does to the output. Inputs are the fake
//! ones of `common::fake_inputs()`, with the Talos patch lists `xtask` hands over
//! (`render::talos_patches`), so `talos/talconfig.yaml` is rendered as in a real run.

mod common;

use render::Rendered;

fn render(cluster: &str, nodes: &str) -> Rendered {
    let root = common::repo_root();
    let outcome = schema::load(&root.join(cluster), &root.join(nodes));
    let config = outcome
        .config
        .unwrap_or_else(|| panic!("{cluster} is invalid"));
    let inputs = common::fake_inputs();
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
