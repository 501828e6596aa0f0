//! Loading the pinned schema set from the cache of `cargo xtask schemas fetch`, through the
//! digests of [`super::digest`] when they verify, from the source files otherwise.
//!
//! The cache directory is untrusted input: every read is bounded and refuses symlinks, a source
//! file is used only if its git blob id is the pin, a digest only if its SHA-256 is the one pinned
//! for that source (`crate::digests`). A digest that fails is ignored (the source is read and the
//! digest rewritten), so a corrupt cache costs time, never a different finding.

use std::path::Path;

use schema::repofile;

use super::SchemaSet;
use super::digest;
use super::parse::{self, MAX_SCHEMA_FILE, Parsed};
use crate::pins::{FileStatus, PINS, PinnedFile};

/// Folder of the digests inside the cache (hidden: schema set listings skip it).
pub(crate) const DIGEST_DIR: &str = ".digest";

/// What [`SchemaSet::load_pinned`] did with one pinned file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinnedState {
    /// Read from its digest, which matched its pinned hash.
    Digest,
    /// Read from the source file, which matched its pin; `digest_written` if a digest was stored
    /// for the next run.
    Source { digest_written: bool },
    /// No source file and no usable digest.
    Missing,
    /// The source file is not the pinned bytes (its git blob id), and no usable digest.
    Modified(String),
}

impl PinnedState {
    pub fn is_ok(&self) -> bool {
        matches!(self, PinnedState::Digest | PinnedState::Source { .. })
    }
}

/// The pinned set as loaded from a cache directory.
pub struct PinnedLoad {
    /// Every file whose state is ok; the others are left out.
    pub set: SchemaSet,
    pub states: Vec<(&'static PinnedFile, PinnedState)>,
}

impl PinnedLoad {
    /// Pinned files that are missing or modified.
    pub fn bad(&self) -> usize {
        self.states.iter().filter(|(_, s)| !s.is_ok()).count()
    }

    /// Pinned files read from their digest.
    pub fn from_digests(&self) -> usize {
        self.states
            .iter()
            .filter(|(_, s)| *s == PinnedState::Digest)
            .count()
    }
}

/// The file name of the digest keyed by `blob` (a pinned source's git blob id; a chart's is its
/// `values.yaml`'s), inside [`DIGEST_DIR`] of the cache.
pub(crate) fn digest_name(blob: &str) -> String {
    format!("{blob}.digest")
}

impl SchemaSet {
    /// Loads the pinned files ([`crate::pins::PINS`]) from the cache directory `dir`. Files are
    /// read in parallel; each comes from its digest if that verifies, else from the source file
    /// (checked against its pin), whose digest is then written for the next run (if `dir` is
    /// writable; a read-only cache just stays on the slower path).
    pub fn load_pinned(dir: &Path) -> PinnedLoad {
        let loaded = crate::par::map(PINS, |pin| load_one(dir, pin));
        let mut set = SchemaSet::empty();
        set.dir = Some(dir.to_path_buf());
        let mut states = Vec::with_capacity(PINS.len());
        let mut parsed_files = Vec::with_capacity(PINS.len());
        for (pin, (state, parsed)) in PINS.iter().zip(loaded) {
            if let Some(parsed) = parsed {
                parsed_files.push((pin.relative_path(), parsed));
            }
            states.push((pin, state));
        }
        // In path order, as `SchemaSet::load` adds them (it decides which of two files defining
        // the same kind wins).
        parsed_files.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, parsed) in parsed_files {
            set.add(parsed);
        }
        PinnedLoad { set, states }
    }
}

fn load_one(dir: &Path, pin: &PinnedFile) -> (PinnedState, Option<Parsed>) {
    let expected = crate::digests::expected(pin.blob);
    if let Some(expected) = expected
        && let Some(bytes) = read_digest(dir, pin.blob, expected)
        && let Some(parsed) = digest::decode(bytes)
    {
        return (PinnedState::Digest, Some(parsed));
    }
    let bytes = match crate::pins::read_pinned(dir, pin, MAX_SCHEMA_FILE) {
        Ok(b) => b,
        Err(FileStatus::Modified(blob)) => return (PinnedState::Modified(blob), None),
        Err(_) => return (PinnedState::Missing, None),
    };
    let parsed = parse_source(pin, bytes);
    let digest_written = expected.is_some_and(|e| write_digest(dir, pin, &parsed, e));
    (PinnedState::Source { digest_written }, Some(parsed))
}

/// `pin`'s source file parsed from its `bytes`, as the schema set reads it (and as its pinned
/// digest hash is computed).
fn parse_source(pin: &PinnedFile, bytes: Vec<u8>) -> Parsed {
    parse::parse_bytes(Ok(bytes), &format!("{}/{}", pin.folder, pin.file))
}

/// The largest digest read: digests are smaller than their sources.
const MAX_DIGEST: u64 = MAX_SCHEMA_FILE;

/// Stores the digest of `parsed` if it is exactly the pinned one (an encoder that drifted from
/// the pinned hashes writes nothing; `crate::digests`' test says which values to pin).
fn write_digest(dir: &Path, pin: &PinnedFile, parsed: &Parsed, expected: &str) -> bool {
    store_digest(dir, pin.blob, &digest::encode(parsed), expected)
}

/// Writes `bytes` as the digest keyed by `blob` in the cache `dir` if they hash to `expected`, through directory handles (`schema::writefile::replace_under`): a
/// symlinked folder is refused and nothing in the cache can redirect the write elsewhere; a
/// symlink planted at the digest's name is removed (never followed), so the next run is fast
/// again.
pub(crate) fn store_digest(dir: &Path, blob: &str, bytes: &[u8], expected: &str) -> bool {
    digest::sha256_hex(bytes) == expected
        && schema::writefile::replace_under(
            dir,
            Path::new(DIGEST_DIR),
            &digest_name(blob),
            bytes,
            0o644,
        )
        .is_ok()
}

#[cfg(test)]
pub(crate) use digest::sha256_hex;

/// The bytes of the digest keyed by `blob` in the cache `dir` if they hash to `expected`
/// (bounded, no symlink followed).
pub(crate) fn read_digest(dir: &Path, blob: &str, expected: &str) -> Option<Vec<u8>> {
    let rel = Path::new(DIGEST_DIR).join(digest_name(blob));
    let bytes = repofile::read_under(dir, &rel, MAX_DIGEST).ok()?;
    (digest::sha256_hex(&bytes) == expected).then_some(bytes)
}

/// The SHA-256 of the digest the source `bytes` of `pin` give (for the pinned-hash test).
#[cfg(test)]
pub(crate) fn digest_hash_of_source(pin: &PinnedFile, bytes: Vec<u8>) -> String {
    digest::sha256_hex(&digest::encode(&parse_source(pin, bytes)))
}

/// The CRD versions of `pin`'s source `bytes` as parsed from the source and as read back from
/// its digest, compiled, in the same order (for the tests that compare them).
#[cfg(test)]
pub(crate) fn compiled_both_ways(
    pin: &PinnedFile,
    bytes: Vec<u8>,
) -> Vec<(super::Compiled, super::Compiled)> {
    let name = format!("{}/{}", pin.folder, pin.file);
    let source = parse_source(pin, bytes);
    let Some(from_digest) = digest::decode(digest::encode(&source)) else {
        panic!("{name}: its digest does not decode");
    };
    let versions = |p: Parsed| match p {
        Parsed::Crds { versions, .. } => versions,
        _ => Vec::new(),
    };
    versions(source)
        .into_iter()
        .zip(versions(from_digest))
        .map(|((_, a), (_, b))| {
            assert!(a.parsed_rules.is_none() && b.parsed_rules.is_some());
            assert!(matches!(b.schema, super::CrdSchema::Digest(..)));
            let take = |v: super::CrdVersion| {
                super::compiled_crd(&v);
                v.compiled.into_inner().expect("compiled")
            };
            (take(a), take(b))
        })
        .collect()
}
