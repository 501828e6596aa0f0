//! The public operations: encrypt (with no churn), decrypt (with MAC verification), status.

use std::collections::BTreeSet;

use crate::age::Unwrapped;
use crate::age::{Identity, decrypt_armored, encrypt_armored};
use crate::cipher::DataKey;
use crate::config::SopsConfig;
use crate::error::{Error, ErrorKind};
use crate::metadata::{AgeEntry, Metadata, SOPS_VERSION};
use crate::time::Clock;
use crate::tree::{Decryptor, Encryptor, Mac, open_mac, seal_mac};
use crate::yaml::{MapItem, Node, emit_documents, parse_documents};

/// The previous ciphertext of a file and the identities that open it, for [`encrypt`]: it is
/// only ever compared with the new plaintext, never used to encrypt it.
#[derive(Clone, Copy)]
pub struct Previous<'a> {
    /// The file's current (encrypted) text.
    pub text: &'a str,
    /// Identities to decrypt it with.
    pub identities: &'a [Identity],
}

/// A decrypted file.
pub struct Decrypted {
    docs: Vec<Node>,
    metadata: Metadata,
    warnings: Vec<String>,
    /// Whether every document carries the first document's `sops` block.
    uniform_metadata: bool,
}

impl Decrypted {
    /// The plaintext as YAML, written as `sops decrypt` would with `stores.yaml.indent = indent`.
    pub fn to_yaml(&self, indent: usize) -> String {
        emit_documents(&self.docs, indent)
    }

    /// The file's metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Things that did not stop decryption but that a person should know (e.g. a missing
    /// `version`, which the sops CLI refuses).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypted")
            .field("metadata", &self.metadata)
            .field("plaintext", &"(redacted)")
            .finish()
    }
}

/// What `sops filestatus` would say about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// Has metadata with a `version` and a `mac`: `{"encrypted":true}`.
    Encrypted,
    /// `{"encrypted":false}`, with the reason.
    NotEncrypted {
        /// Why sops would call it unencrypted.
        reason: String,
    },
    /// sops would fail to load it.
    Malformed {
        /// What is wrong.
        reason: String,
    },
}

fn roots(docs: &[Node]) -> Result<(), Error> {
    if docs.iter().any(|d| !matches!(d, Node::Map(_))) {
        return Err(Error::new(
            ErrorKind::Yaml,
            "every YAML document must be a mapping at the top level (sops rejects top-level lists and scalars)",
        ));
    }
    Ok(())
}

/// Splits the `sops` block off every document; metadata comes from the first document.
/// Also says whether every document carries the same `sops` block: sops writes one block to
/// every document, and Flux decrypts each document with its own block, so a file whose later
/// blocks differ does not say to the cluster what it says here.
fn split_metadata(mut docs: Vec<Node>) -> Result<(Vec<Node>, Metadata, bool), Error> {
    roots(&docs)?;
    let first = docs.first().and_then(|d| d.get("sops")).ok_or_else(|| {
        Error::new(
            ErrorKind::Metadata,
            "the file is not encrypted: it has no `sops` metadata",
        )
        .with_help("encrypt it with `cargo xtask secrets encrypt`")
    })?;
    let metadata = Metadata::from_node(first)?;
    let first = first.clone();
    let uniform = docs.iter().all(|d| d.get("sops") == Some(&first));
    for doc in &mut docs {
        if let Node::Map(items) = doc {
            items.retain(|i| !matches!(i, MapItem::Pair(k, _) if k == "sops"));
        }
    }
    Ok((docs, metadata, uniform))
}

fn unwrap_data_key(md: &Metadata, identities: &[Identity]) -> Result<DataKey, Error> {
    let mut format_error = None;
    for entry in &md.age {
        match decrypt_armored(&entry.enc, identities) {
            Ok(Unwrapped::Plaintext(bytes)) => {
                return DataKey::from_bytes(&bytes)
                    .ok_or_else(|| Error::age_format("the age-wrapped data key is not 32 bytes"));
            }
            Ok(Unwrapped::NoMatch(kinds)) => {
                if kinds.iter().any(|k| k == "mlkem768x25519") && format_error.is_none() {
                    format_error = Some(Error::key(
                        format!(
                            "recipient `{}` is post-quantum (mlkem768x25519), which is not supported",
                            entry.recipient
                        ),
                        "decrypt it with sops ≥ 3.12, or re-encrypt the file to an X25519 recipient",
                    ));
                }
            }
            Err(e) => format_error = Some(e),
        }
    }
    if let Some(e) = format_error {
        return Err(e);
    }
    let recipients: Vec<&str> = md.age.iter().map(|e| e.recipient.as_str()).collect();
    let mut message = if recipients.is_empty() {
        "the file has no age recipients".to_owned()
    } else {
        format!(
            "none of the {} age identities opens the file; it is encrypted to {}",
            identities.len(),
            recipients.join(", ")
        )
    };
    if !md.other_key_types.is_empty() {
        message.push_str(&format!(
            " (it also has {} keys, which are not supported)",
            md.other_key_types.join(", ")
        ));
    }
    Err(Error::new(ErrorKind::NoIdentity, message).with_help(
        "point SOPS_AGE_KEY_FILE at the key file whose `# public key:` is one of those recipients",
    ))
}

fn decrypt_docs(docs: Vec<Node>, identities: &[Identity]) -> Result<Decrypted, Error> {
    let (mut docs, metadata, uniform_metadata) = split_metadata(docs)?;
    let key = unwrap_data_key(&metadata, identities)?;
    let selector = metadata.selection.compile()?;
    let mut dec = Decryptor {
        key: &key,
        selector: &selector,
        mac: Mac::new(metadata.mac_only_encrypted),
        warnings: Vec::new(),
        in_seq: false,
    };
    for doc in &mut docs {
        dec.node(doc, &mut Vec::new(), &mut Vec::new())?;
    }
    let Decryptor {
        mac, mut warnings, ..
    } = dec;
    let computed = mac.finish();
    let aad = metadata.mac_aad()?;
    let stored = open_mac(&key, &metadata.mac, &aad)?;
    if stored.is_empty() {
        return Err(Error::new(
            ErrorKind::MacMismatch,
            "the file has no MAC (`sops.mac` is empty)",
        )
        .with_help("re-encrypt the file from its plaintext"));
    }
    if stored != computed {
        let what = if metadata.mac_only_encrypted {
            "encrypted values"
        } else {
            "values (encrypted or not)"
        };
        return Err(Error::new(ErrorKind::MacMismatch, format!("MAC mismatch: {what} were changed, added, removed or reordered after the file was encrypted"))
            .with_help("every single value still authenticates, so the change is structural; restore the file from git or re-encrypt it from its plaintext"));
    }
    if metadata.version.is_none() {
        warnings.push("`sops.version` is missing: the sops CLI refuses this file (`Version string empty`) and `sops filestatus` calls it unencrypted".into());
    }
    Ok(Decrypted {
        docs,
        metadata,
        warnings,
        uniform_metadata,
    })
}

/// Decrypts a sops YAML (or JSON) file: unwraps the data key with the first identity that
/// opens an `enc` block, decrypts every value by the file's selection rule, and verifies the
/// MAC. A value that fails authentication is reported with its dotted path.
pub fn decrypt(text: &str, identities: &[Identity]) -> Result<Decrypted, Error> {
    decrypt_docs(parse_documents(text)?, identities)
}

/// Decrypts a sops dotenv file (`KEY=ENC[…]` lines, flattened `sops_…` metadata).
pub fn decrypt_dotenv(text: &str, identities: &[Identity]) -> Result<Decrypted, Error> {
    decrypt_docs(vec![crate::dotenv::to_tree(text)?], identities)
}

/// What `sops filestatus` would report.
pub fn status(text: &str) -> FileStatus {
    let docs = match parse_documents(text) {
        Ok(d) => d,
        Err(e) => {
            return FileStatus::Malformed {
                reason: e.to_string(),
            };
        }
    };
    let Some(meta) = docs.first().and_then(|d| d.get("sops")) else {
        return FileStatus::NotEncrypted {
            reason: "no `sops` metadata".into(),
        };
    };
    match Metadata::from_node(meta) {
        Err(e) => FileStatus::Malformed {
            reason: e.to_string(),
        },
        Ok(md) if md.version.is_none() => FileStatus::NotEncrypted {
            reason: "`sops.version` is missing".into(),
        },
        Ok(md) if md.mac.is_empty() => FileStatus::NotEncrypted {
            reason: "`sops.mac` is missing".into(),
        },
        Ok(_) => FileStatus::Encrypted,
    }
}

/// Encrypts `plaintext` (YAML, one or more documents) for the file at `rel_path` (relative to
/// the directory of `.sops.yaml`, `/`-separated), using the clock for `lastmodified`.
///
/// With `previous`, avoids churn: if the previous file decrypts (MAC verified) to the same
/// documents under the same rule and exactly the rule's recipients, its text is returned
/// unchanged. Otherwise the whole file is encrypted under a new data key with new IVs: nothing
/// of a previous file (which may come from anyone, since anyone can encrypt to a public
/// recipient) is used to seal new plaintext. A previous file that none of the identities opens
/// is ignored; one that is tampered with is an error.
pub fn encrypt(
    rel_path: &str,
    plaintext: &str,
    config: &SopsConfig,
    previous: Option<Previous<'_>>,
) -> Result<String, Error> {
    encrypt_at(rel_path, plaintext, config, previous, Clock::System)
}

/// [`encrypt`] with an explicit clock (tests pin `lastmodified`).
pub fn encrypt_at(
    rel_path: &str,
    plaintext: &str,
    config: &SopsConfig,
    previous: Option<Previous<'_>>,
    clock: Clock,
) -> Result<String, Error> {
    let rule = config.rule_for(rel_path)?;
    let mut docs = parse_documents(plaintext)?;
    roots(&docs)?;
    if docs.is_empty() {
        return Err(Error::new(
            ErrorKind::Yaml,
            "nothing to encrypt: the file has no YAML document",
        ));
    }
    if docs.iter().any(|d| d.get("sops").is_some()) {
        return Err(Error::new(
            ErrorKind::AlreadyEncrypted,
            "the plaintext has a top-level `sops` key: it is already encrypted",
        )
        .with_help("decrypt it first, or rename the key"));
    }
    let recipients: BTreeSet<String> = rule.recipients.iter().map(ToString::to_string).collect();
    if let Some(prev) = previous {
        match decrypt(prev.text, prev.identities) {
            Ok(dec) => {
                // The previous file is kept only when it says exactly what we would write, to
                // exactly our recipients: then it reveals nothing its author did not already
                // know. Its data key and IVs are never used for anything new, because whoever
                // wrote the file may know them (the recipients are not covered by the MAC, and
                // anyone can encrypt to a public recipient).
                let prev_recipients: BTreeSet<String> = dec
                    .metadata
                    .age
                    .iter()
                    .map(|e| e.recipient.clone())
                    .collect();
                let same_keys = prev_recipients == recipients
                    && dec.metadata.age.len() == recipients.len()
                    && dec.metadata.other_key_types.is_empty()
                    && dec.uniform_metadata;
                let same_rule = dec.metadata.selection == rule.selection
                    && dec.metadata.mac_only_encrypted == rule.mac_only_encrypted;
                if same_keys && same_rule && dec.metadata.version.is_some() && dec.docs == docs {
                    return Ok(prev.text.to_owned());
                }
            }
            Err(e) if e.kind() == ErrorKind::NoIdentity || e.kind() == ErrorKind::Metadata => {}
            Err(e) => {
                return Err(e.in_source(&format!("previous version of {rel_path}")).with_help(
                    "the existing encrypted file does not verify; inspect it (`git diff`), restore it, or delete it to encrypt from scratch",
                ));
            }
        }
    }
    // Anything new is sealed under a data key made here, now, with fresh IVs.
    let key = DataKey::generate()?;
    let age = rule
        .recipients
        .iter()
        .map(|r| {
            Ok(AgeEntry {
                recipient: r.to_string(),
                enc: encrypt_armored(key.bytes(), r)?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let selector = rule.selection.compile()?;
    let mut enc = Encryptor {
        key: &key,
        selector: &selector,
        mac: Mac::new(rule.mac_only_encrypted),
    };
    for doc in &mut docs {
        enc.node(doc, &mut Vec::new())?;
    }
    let mac = enc.mac.finish();
    let lastmodified = clock.rfc3339();
    let metadata = Metadata {
        age,
        mac: seal_mac(&key, &mac, &lastmodified)?,
        lastmodified,
        selection: rule.selection.clone(),
        mac_only_encrypted: rule.mac_only_encrypted,
        version: Some(SOPS_VERSION.into()),
        other_key_types: Vec::new(),
    };
    let block = metadata.to_node();
    for doc in &mut docs {
        if let Node::Map(items) = doc {
            items.push(MapItem::Pair("sops".into(), block.clone()));
        }
    }
    Ok(emit_documents(&docs, config.indent()))
}

/// Parses YAML and writes it back the way sops' YAML store would (yaml.v3 style).
pub fn format_yaml(text: &str, indent: usize) -> Result<String, Error> {
    Ok(emit_documents(&parse_documents(text)?, indent))
}
