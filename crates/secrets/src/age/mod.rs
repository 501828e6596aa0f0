//! A native age (C2SP `age.md`, version 1) implementation of exactly what sops needs: the
//! X25519 recipient and identity, the header with its HMAC, the STREAM payload and ASCII armor.
//!
//! Post-quantum keys (`age1pq1…`, `AGE-SECRET-KEY-PQ-1…`, stanza `mlkem768x25519`) are
//! recognised and refused with a message; see docs/secrets.md for why.

mod bech32;
mod file;
mod keys;

pub(crate) use file::{Unwrapped, decrypt_armored, encrypt_armored};
pub use keys::{
    Identity, KeyFile, Recipient, load_identities, load_identities_from, parse_identities,
    write_new_key_file,
};
