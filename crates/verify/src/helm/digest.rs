//! The pre-digested form of a chart's pinned `values.schema.json` and `values.yaml`, kept in the
//! schema cache beside the CRD digests: both as compact JSON, so that a run parses neither the
//! YAML of the defaults (cilium's is 180 kB) nor the schema's indentation again.
//!
//! Trusted like the CRD digests (`crate::schemaset`): only when its SHA-256 is the value pinned
//! in the binary for the chart's `values.yaml` blob (`crate::digests::CHART_DIGESTS`). Anything
//! else is ignored, the two source files are read (each checked against its pin) and the digest
//! is written again, so a damaged cache costs time, never a different finding.
//!
//! Layout: a magic line, the schema as one line of JSON, then the defaults as JSON.

use std::path::Path;

use serde_json::Value;

use super::{ChartPin, read_pinned};
use crate::schemaset::pinned::{read_digest, store_digest};

/// First line of every chart digest; bump the number when the layout or encoding changes (the
/// pinned hashes then change too).
const MAGIC: &[u8] = b"aiops-cluster-template chart digest 1\n";

/// The chart's schema and defaults: from the digest when it verifies, else from the pinned
/// source files (whose digest is then stored). `None` when the sources are missing or are not
/// the pinned bytes.
pub(super) fn load(dir: &Path, pin: &ChartPin) -> Option<(Value, Value)> {
    let expected = crate::digests::expected_chart(pin.values.blob);
    if let Some(expected) = expected
        && let Some(bytes) = read_digest(dir, pin.values.blob, expected)
        && let Some(parsed) = decode(&bytes)
    {
        return Some(parsed);
    }
    let (schema, defaults) = from_sources(dir, pin)?;
    if let Some(expected) = expected {
        store_digest(dir, pin.values.blob, &encode(&schema, &defaults), expected);
    }
    Some((schema, defaults))
}

fn from_sources(dir: &Path, pin: &ChartPin) -> Option<(Value, Value)> {
    let schema: Value = serde_json::from_slice(&read_pinned(dir, &pin.schema)?).ok()?;
    let text = String::from_utf8(read_pinned(dir, &pin.values)?).ok()?;
    let loaded = schema::yaml::load(
        &text,
        &pin.values.relative_path(),
        schema::yaml::Limits::MANIFESTS,
    );
    let defaults = loaded
        .documents
        .first()
        .map(|d| d.to_json())
        .filter(|v| !v.is_null())
        .unwrap_or(Value::Object(Default::default()));
    Some((schema, defaults))
}

fn encode(schema: &Value, defaults: &Value) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    // Compact JSON has no raw newline (one in a string is escaped); writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, schema);
    out.push(b'\n');
    let _ = serde_json::to_writer(&mut out, defaults);
    out
}

fn decode(bytes: &[u8]) -> Option<(Value, Value)> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let newline = rest.iter().position(|&b| b == b'\n')?;
    let schema = serde_json::from_slice(&rest[..newline]).ok()?;
    let defaults = serde_json::from_slice(&rest[newline + 1..]).ok()?;
    Some((schema, defaults))
}

/// The SHA-256 of the digest that `pin`'s source files in `dir` give, if they are the pinned
/// bytes (for the pinned-hash test).
#[cfg(test)]
pub(crate) fn digest_hash(dir: &Path, pin: &ChartPin) -> Option<String> {
    let (schema, defaults) = from_sources(dir, pin)?;
    Some(crate::schemaset::pinned::sha256_hex(&encode(
        &schema, &defaults,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schemaset::pinned::{DIGEST_DIR, digest_name};
    use serde_json::json;
    use std::path::PathBuf;

    /// Where the digest of `pin` lives, relative to the cache.
    fn rel(pin: &ChartPin) -> PathBuf {
        Path::new(DIGEST_DIR).join(digest_name(pin.values.blob))
    }

    /// With the real chart files (`CLUSTER_CHART_CACHE`, see `digests::pinned_chart_digests`):
    /// the first load writes each chart's digest, the next reads it, and a digest that is
    /// damaged, swapped for another chart's or replaced by a symlink is never used: the sources
    /// give the same schema and defaults, and the digest is written again.
    #[test]
    #[allow(clippy::print_stderr)] // says that it did not check
    fn chart_digests_are_used_only_when_they_verify() {
        let Some(real) = std::env::var_os("CLUSTER_CHART_CACHE").map(PathBuf::from) else {
            eprintln!("chart digests: not checked, CLUSTER_CHART_CACHE is not set");
            return;
        };
        let cache = tempfile::tempdir().expect("tempdir");
        let dir = cache.path();
        for pin in crate::CHART_PINS {
            for file in [&pin.schema, &pin.values] {
                let to = dir.join(file.relative_path());
                std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
                std::fs::copy(real.join(file.relative_path()), &to).expect("copy");
            }
        }
        let pins = crate::CHART_PINS;
        let want: Vec<_> = pins.iter().map(|p| from_sources(dir, p)).collect();
        assert!(want.iter().all(Option::is_some));
        for (pin, want) in pins.iter().zip(&want) {
            assert_eq!(&load(dir, pin), want, "first load of {}", pin.chart);
            assert!(
                dir.join(rel(pin)).is_file(),
                "{}: no digest written",
                pin.chart
            );
            assert_eq!(
                &load(dir, pin),
                want,
                "load of {} from its digest",
                pin.chart
            );
        }
        let digest = |i: usize| dir.join(rel(&pins[i]));
        let mut edited = std::fs::read(digest(0)).expect("read");
        let at = edited.len() - 3;
        edited[at] ^= 0x01;
        std::fs::write(digest(0), &edited).expect("write");
        std::fs::copy(digest(2), digest(1)).expect("copy");
        std::fs::remove_file(digest(3)).expect("rm");
        std::os::unix::fs::symlink(digest(2), digest(3)).expect("symlink");
        for i in 0..4 {
            assert_eq!(
                load(dir, &pins[i]),
                want[i],
                "{} after damage",
                pins[i].chart
            );
            let fixed = std::fs::symlink_metadata(digest(i)).expect("digest");
            assert!(fixed.is_file(), "{}: digest not rewritten", pins[i].chart);
        }
        // Without the sources, a verified digest is enough; a damaged one is not.
        for pin in pins {
            std::fs::remove_file(dir.join(pin.values.relative_path())).expect("rm");
        }
        assert_eq!(load(dir, &pins[0]), want[0]);
        std::fs::write(digest(0), b"aiops-cluster-template chart digest 1\n{}\n{}").expect("write");
        assert_eq!(load(dir, &pins[0]), None);
    }

    #[test]
    fn a_digest_reads_back_as_written() {
        let schema = json!({"type": "object", "description": "two\nlines"});
        let defaults = json!({"a": [1, 2.5, "x\ny"], "b": {"c": null}});
        let bytes = encode(&schema, &defaults);
        assert_eq!(decode(&bytes), Some((schema, defaults)));
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode(&bytes[1..]), None);
    }
}
