//! Helpers shared by the integration tests (included with `mod common;`).

#![allow(dead_code)]

use std::path::PathBuf;

use proptest::prelude::*;

/// `../shared` of the checkout, or `CLUSTER_SHARED_DIR`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("CLUSTER_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

pub fn vectors() -> PathBuf {
    shared_dir().join("vectors/sops")
}

pub fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A random Secret as JSON text (JSON is YAML); values cover every scalar type, "" and null,
/// lists and nested maps, unicode, tabs and newlines.
pub fn secret_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        "[ -~äöü日本語🔐\t\n]{0,24}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("")),
        Just(serde_json::Value::Null),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-zA-Z][-._a-zA-Z0-9]{0,12}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    // Half the cases are what Kubernetes accepts (`stringData` maps strings to strings, the
    // path through kustomize and Flux), half any YAML structure sops must carry.
    let flat = prop::collection::btree_map(
        "[a-zA-Z][-._a-zA-Z0-9]{0,15}",
        "[ -~äöü日本語🔐\t\n]{0,24}".prop_map(serde_json::Value::from),
        1..6,
    );
    let nested = prop::collection::btree_map("[a-zA-Z][-._a-zA-Z0-9]{0,15}", value, 1..6);
    prop_oneof![flat, nested].prop_map(|data| {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "generated", "namespace": "default"},
            "stringData": data,
        })
        .to_string()
    })
}
