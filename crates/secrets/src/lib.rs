//! Native SOPS (YAML store) + age X25519, producing files that the sops CLI and Flux's
//! kustomize-controller read, without a sops binary.
//!
//! - [`encrypt`] turns plaintext YAML into a sops file per the matching `.sops.yaml` creation
//!   rule ([`SopsConfig`]); given the [`Previous`] version it avoids churn (identical output when
//!   nothing changed; otherwise a new data key and new IVs, never the previous file's).
//! - [`decrypt`] opens a sops file with age [`Identity`]s, verifies every value and the MAC,
//!   and names the path of a value that fails authentication.
//! - [`status`] answers like `sops filestatus`.
//! - Keys: [`Identity::generate`], [`KeyFile`], [`write_new_key_file`] (mode 0600, never
//!   overwrites), [`load_identities`] (sops' `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, default file).
//!
//! ```
//! use secrets::{Clock, Identity, SopsConfig, decrypt, encrypt_at};
//!
//! let id = Identity::generate()?;
//! let config = SopsConfig::parse(&format!(
//!     "creation_rules:\n  - path_regex: kubernetes/.*\\.sops\\.ya?ml\n    encrypted_regex: ^(data|stringData)$\n    mac_only_encrypted: true\n    age: {}\nstores:\n  yaml:\n    indent: 2\n",
//!     id.recipient()
//! ))?;
//! let plain = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: hunter2\n";
//! let file = encrypt_at("kubernetes/s.sops.yaml", plain, &config, None, Clock::Fixed(0))?;
//! assert!(file.contains("  password: ENC[AES256_GCM,data:") && file.contains("\n  mac: ENC["));
//! assert_eq!(decrypt(&file, &[id])?.to_yaml(2), plain);
//! # Ok::<(), secrets::Error>(())
//! ```
//!
//! # Invariants
//!
//! - **This is the only crate that handles key material; it never writes plaintext to disk.**
//!   Plaintext lives in memory only; secret keys are zeroed on drop and redacted in `Debug`.
//! - Output is what sops 3.10 writes (`version: 3.10.2`): X25519 recipients only, timestamps
//!   stored as `type:str`, `lastmodified` quoted, `mac: ENC[` unquoted, `sops` last in every
//!   document. Every Flux since 2.0 and every sops CLI since 3.9 reads it.
//! - Decryption decides what is encrypted from the file's selection rule, as sops does, not from
//!   the `ENC[` prefix.
//! - No printing, no panics on bad input; errors say where and what to do.

mod age;
mod cipher;
mod config;
mod dotenv;
mod error;
mod exposed;
mod metadata;
mod random;
mod rules;
mod sops;
mod time;
mod tree;
mod yaml;

#[cfg(test)]
mod known_answers;

pub use crate::age::{
    Identity, KeyFile, Recipient, load_identities, load_identities_from, parse_identities,
    write_new_key_file,
};
pub use crate::config::{CreationRule, SopsConfig};
pub use crate::error::{Error, ErrorKind};
pub use crate::exposed::{IDENTITY_KEYS, plaintext_outside_identity};
pub use crate::metadata::{AgeEntry, Metadata, SOPS_VERSION};
pub use crate::rules::SelectionRule;
pub use crate::sops::{
    Decrypted, FileStatus, Previous, decrypt, decrypt_dotenv, encrypt, encrypt_at, format_yaml,
    status,
};
pub use crate::time::Clock;

/// The largest sops file (or plaintext to encrypt) this crate reads: 8 MiB, far above any real
/// secret (a Kubernetes Secret is limited to 1 MiB) and small enough that the parsed tree of a
/// hostile file stays within a few hundred MB.
pub const MAX_FILE_BYTES: u64 = 8 << 20;

/// The largest age key file read: 64 KiB (a key line is 74 bytes).
pub const MAX_KEY_FILE_BYTES: u64 = 64 << 10;

/// The largest `.sops.yaml` read: 64 KiB.
pub const MAX_CONFIG_BYTES: u64 = 64 << 10;

/// Reads a sops file (or a plaintext to encrypt) from a repository: never through a symlink
/// (a committed `x.sops.yaml -> ../age.key` would print the key), a regular file only (no
/// FIFO, no `/dev/zero`), at most [`MAX_FILE_BYTES`], UTF-8.
pub fn read_file(path: &std::path::Path) -> Result<String, Error> {
    schema::repofile::read_text(path, MAX_FILE_BYTES)
        .map_err(|e| Error::read(path, "cannot read", e))
}
