//! Secrets derived from the age key: stable across `configure` runs, without state on disk.
//!
//! A value the cluster needs but nobody types in (the MCP session encryption seed) must not change
//! on every run (that would re-encrypt the file and end every session on each commit), must not be
//! stored in plaintext next to `cluster.yaml`, and must not be read back out of the previous
//! ciphertext (whose data key the output stage does not trust). It is therefore computed:
//! HMAC-SHA256 over a purpose string, keyed with the repository's age secret key, as hex. Anyone
//! who can compute it can already decrypt every `*.sops.*` file, and nobody else can.

use sha2::{Digest, Sha256};

const BLOCK: usize = 64;

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| -> [u8; BLOCK] {
        let mut out = block;
        for b in &mut out {
            *b ^= byte;
        }
        out
    };
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The secret for `purpose` (a fixed string naming what it is for), as 64 lowercase hex digits:
/// no characters that YAML, Kubernetes `$(…)` expansion or a comma-separated flag could
/// misread.
pub(crate) fn derived_secret(age_secret_key: &str, purpose: &str) -> String {
    let label = format!("aiops-cluster-template derived secret v1: {purpose}");
    hmac_sha256(age_secret_key.as_bytes(), label.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    // RFC 4231, test cases 1, 2 and 6 (a key longer than the block).
    #[test]
    fn hmac_sha256_known_answers() {
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn derived_secrets_are_stable_and_separated() {
        let a = derived_secret("AGE-SECRET-KEY-1AAA", "x");
        assert_eq!(a, derived_secret("AGE-SECRET-KEY-1AAA", "x"));
        assert_ne!(a, derived_secret("AGE-SECRET-KEY-1AAB", "x"));
        assert_ne!(a, derived_secret("AGE-SECRET-KEY-1AAA", "y"));
        assert_eq!(a.len(), 64);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
}
