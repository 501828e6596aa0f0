//! The render manifest: its format, hashes, reading it back, its bytes on disk.

use std::collections::BTreeMap;
use std::path::Path;

use schema::{Diagnostic, Location};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::paths::{is_reserved, is_safe_relative};

/// File name of the render manifest, at the output root.
pub const MANIFEST_FILE: &str = ".render-manifest.json";
pub(super) const MANIFEST_VERSION: u32 = 1;
pub(super) const MANIFEST_ABOUT: &str = "Written by `cargo xtask configure`: every file it rendered, with the SHA-256 of the bytes written. Commit it. Files listed here and no longer rendered are removed unless edited since; nothing else is ever touched.";
/// The largest render manifest read: about 100 times the manifest of the largest benchmarked
/// configuration.
pub const MANIFEST_MAX_BYTES: u64 = 16 << 20;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Manifest {
    #[serde(default)]
    pub(super) about: String,
    pub(super) version: u32,
    /// `false` while a run is applying: the journal written before the first file is touched.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub(super) complete: bool,
    pub(super) files: BTreeMap<String, Entry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Entry {
    /// SHA-256 (hex) of the bytes written.
    pub(super) sha256: String,
    /// The template it was rendered from.
    pub(super) source: String,
    /// Journal only: the hash of the file being replaced, which is still ours if the run stops
    /// before the rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) replaces: Option<String>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Entry {
    pub(super) fn vouches_for(&self, hash: &str) -> bool {
        self.sha256 == hash || self.replaces.as_deref() == Some(hash)
    }
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

pub(super) fn manifest_bytes(m: &Manifest) -> Vec<u8> {
    let mut text = serde_json::to_string_pretty(m).unwrap_or_default();
    text.push('\n');
    text.into_bytes()
}

pub(super) fn read_manifest(root: &Path) -> Result<(Manifest, Option<Vec<u8>>), Box<Diagnostic>> {
    let path = root.join(MANIFEST_FILE);
    let bytes = match schema::repofile::read(&path, MANIFEST_MAX_BYTES) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            return Ok((
                Manifest {
                    complete: true,
                    version: MANIFEST_VERSION,
                    ..Manifest::default()
                },
                None,
            ));
        }
        Err(e) => {
            return Err(Box::new(
                Diagnostic::error(
                    "render::manifest",
                    "",
                    format!("{MANIFEST_FILE} {e}"),
                )
                .with_help("restore it from git (`git checkout -- .render-manifest.json`); configure reads it only as a regular file"),
            ));
        }
    };
    let broken = |msg: String| {
        Box::new(Diagnostic::error("render::manifest", "", format!("{MANIFEST_FILE}: {msg}"))
            .at(Some(Location::new(&path, 1, 1, 1)))
            .with_help("restore it from git; deleting it makes configure treat every existing output as a file it did not write (conflicts, no pruning)"))
    };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| broken(format!("not a render manifest: {e}")))?;
    if manifest.version != MANIFEST_VERSION {
        return Err(broken(format!(
            "version {} is not supported (expected {MANIFEST_VERSION})",
            manifest.version
        )));
    }
    for path in manifest.files.keys() {
        if !is_safe_relative(path) || is_reserved(path) {
            return Err(broken(format!(
                "lists `{path}`, which is not a path inside the output directory"
            )));
        }
    }
    Ok((manifest, Some(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_a_known_digest() {
        // FIPS 180-2 example "abc".
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
