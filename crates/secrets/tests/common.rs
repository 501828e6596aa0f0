//! Helpers shared by the integration tests (included with `mod common;`).

#![allow(dead_code)]

use std::path::PathBuf;

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
