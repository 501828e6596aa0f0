//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod tree;

use std::path::PathBuf;
use std::sync::OnceLock;

use verify::SchemaSet;

/// `../shared` of the workspace, or `$CLUSTER_SHARED_DIR`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("CLUSTER_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

pub fn schemas_dir() -> PathBuf {
    shared_dir().join("schemas")
}

/// The pinned schema set, loaded once per test binary.
pub fn schemas() -> &'static SchemaSet {
    static SET: OnceLock<SchemaSet> = OnceLock::new();
    SET.get_or_init(|| {
        SchemaSet::load(&schemas_dir()).unwrap_or_else(|e| {
            panic!("the shared schema set is required for this test ({e}); set CLUSTER_SHARED_DIR")
        })
    })
}

/// Loads every YAML document of a file as JSON.
pub fn load_json(path: &std::path::Path) -> Vec<serde_json::Value> {
    let loaded = schema::yaml::load_file(path, path, schema::yaml::Limits::MANIFESTS);
    assert!(
        loaded.diagnostics.is_empty(),
        "{}: {:?}",
        path.display(),
        loaded.diagnostics
    );
    loaded
        .documents
        .iter()
        .filter(|d| !d.is_null())
        .map(|d| d.to_json())
        .collect()
}
