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

/// A copy of the pinned files in a fresh schema cache (removed when the guard drops).
pub fn pinned_cache() -> tempfile::TempDir {
    let cache = tempfile::tempdir().expect("tempdir");
    for pin in verify::pins::PINS {
        let bytes = std::fs::read(schemas_dir().join(pin.relative_path()))
            .expect("shared schema file (set CLUSTER_SHARED_DIR)");
        verify::pins::store_verified(cache.path(), pin, &bytes).expect("pinned bytes");
    }
    cache
}

/// The pinned schema set as `verify` loads it from a cache on a second run: from the digests
/// the first run wrote. Loaded once per test binary.
pub fn digest_schemas() -> &'static SchemaSet {
    static SET: OnceLock<SchemaSet> = OnceLock::new();
    SET.get_or_init(|| {
        let cache = pinned_cache();
        let first = SchemaSet::load_pinned(cache.path());
        assert_eq!(first.bad(), 0);
        let second = SchemaSet::load_pinned(cache.path());
        assert_eq!(
            second.from_digests(),
            verify::pins::PINS.len(),
            "every file from its digest on the second run: {:?}",
            second.states
        );
        // The digests' schemas are parsed lazily from bytes held in memory, not from the files.
        drop(cache);
        second.set
    })
}
