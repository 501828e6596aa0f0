//! Shared helpers for template tests: render a test configuration in memory with throwaway
//! inputs, print a tree for snapshots, parse rendered documents.
//!
//! Secrets in test configurations are fake values; the rendered `*.sops.*` files are kept in
//! memory here (and shown in snapshots as plaintext fakes). Real runs encrypt them before
//! anything is written.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use render::{CloudflareTunnel, Inputs, Rendered};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fake inputs: a syntactically valid age recipient (not a usable key), fake deploy key, token
/// and tunnel credentials.
pub fn fake_inputs() -> Inputs {
    Inputs {
        age_public_key: Some(
            "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq".to_owned(),
        ),
        age_private_key: Some(
            "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSFAKE0".to_owned(),
        ),
        cloudflare_tunnel: Some(CloudflareTunnel {
            account_tag: "fake".into(),
            tunnel_id: "fake".into(),
            tunnel_secret: "fake".into(),
        }),
        deploy_key: Some(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----"
                .to_owned(),
        ),
        push_token: Some("fake-push-token".to_owned()),
        talos_patches: render::talos_patches(&repo_root().join("templates")),
    }
}

/// Loads `cluster`/`nodes` (paths relative to the repository) and renders the real templates.
/// Panics with every diagnostic when the config is invalid or a template fails.
pub fn render_files(cluster: &str, nodes: &str) -> Rendered {
    let root = repo_root();
    let out = schema::load(&root.join(cluster), &root.join(nodes));
    let Some(config) = out.config else {
        panic!(
            "{cluster} is invalid:\n{}",
            out.diagnostics
                .iter()
                .map(|d| d.render(None))
                .collect::<String>()
        );
    };
    match render::render_templates(&root.join("templates"), &config.context(), &fake_inputs()) {
        Ok(r) => r,
        Err(diags) => panic!(
            "rendering {cluster} failed:\n{}",
            diags.iter().map(|d| d.render(None)).collect::<String>()
        ),
    }
}

/// `public` / `private` with `.github/tests/nodes.yaml`.
pub fn render_test_config(name: &str) -> Rendered {
    render_files(
        &format!(".github/tests/{name}.yaml"),
        ".github/tests/nodes.yaml",
    )
}

/// The whole tree as one text: `=== path ===` then the contents, sorted by path.
pub fn tree_text(r: &Rendered) -> String {
    let mut out = String::new();
    for (path, file) in &r.files {
        out.push_str(&format!("=== {path} ===\n"));
        out.push_str(&String::from_utf8_lossy(&file.contents));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Every YAML document of a rendered file, as JSON; panics with the file name on a parse error.
pub fn documents(r: &Rendered, path: &str) -> Vec<serde_json::Value> {
    let file = r
        .files
        .get(path)
        .unwrap_or_else(|| panic!("{path} was not rendered"));
    let text = String::from_utf8(file.contents.clone()).unwrap();
    let loaded = schema::yaml::load(&text, Path::new(path), schema::yaml::Limits::MANIFESTS);
    assert!(
        loaded.diagnostics.is_empty(),
        "{path} does not parse:\n{}",
        loaded
            .diagnostics
            .iter()
            .map(|d| d.render(Some(&text)))
            .collect::<String>()
    );
    loaded.documents.iter().map(|d| d.to_json()).collect()
}

/// Every document of every rendered YAML file, with its path.
pub fn all_documents(r: &Rendered) -> Vec<(String, serde_json::Value)> {
    r.files
        .keys()
        .filter(|p| p.ends_with(".yaml") || p.ends_with(".yml"))
        .flat_map(|p| documents(r, p).into_iter().map(move |d| (p.clone(), d)))
        .collect()
}
