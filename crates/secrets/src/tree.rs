//! Walking sops trees: encrypting and decrypting leaves with their AAD, and the MAC.

use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::cipher::{self, DataKey, Sealed};
use crate::error::{Error, ErrorKind};
use crate::rules::Selector;
use crate::time::parse_rfc3339;
use crate::yaml::{MapItem, Node};

/// `sha256("sops")`, written first into the MAC when `mac_only_encrypted` is set.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// The running MAC.
pub(crate) struct Mac {
    hash: Sha512,
    only_encrypted: bool,
}

impl Mac {
    pub(crate) fn new(only_encrypted: bool) -> Mac {
        let mut hash = Sha512::new();
        if only_encrypted {
            hash.update(MAC_ONLY_ENCRYPTED_INIT);
        }
        Mac {
            hash,
            only_encrypted,
        }
    }

    fn add(&mut self, bytes: &[u8], encrypted: bool) {
        if !self.only_encrypted || encrypted {
            self.hash.update(bytes);
        }
    }

    /// 128 upper-case hex digits.
    pub(crate) fn finish(self) -> String {
        self.hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }
}

/// sops' `ToBytes` for a leaf, with its `type:` name; `None` for nulls and collections.
fn leaf_bytes(node: &Node) -> Option<(&'static str, Vec<u8>)> {
    Some(match node {
        Node::Str(s) => ("str", s.as_bytes().to_vec()),
        Node::Int(i) => ("int", i.to_string().into_bytes()),
        // Rust's `Display` for f64 is the shortest round-trip decimal without exponent, like
        // Go's `FormatFloat(f, 'f', -1, 64)` (they differ only for infinities and NaN).
        Node::Float(f) => ("float", format!("{f}").into_bytes()),
        Node::Bool(b) => (
            "bool",
            if *b {
                b"True".to_vec()
            } else {
                b"False".to_vec()
            },
        ),
        // Timestamps are written as `str` so that sops < 3.10 (and Flux before 2.x with it) can
        // read them; the MAC bytes are the same either way.
        Node::Time(t) => ("str", t.as_bytes().to_vec()),
        Node::Comment(c) => ("comment", c.as_bytes().to_vec()),
        Node::Null | Node::Map(_) | Node::Seq(_) => return None,
    })
}

fn aad(path: &[String]) -> String {
    let mut s = path.join(":");
    s.push(':');
    s
}

/// Dotted path for messages: `stringData.password`, `a.list[2]`. `index[i]` is the position
/// inside the sequence held by `path[i]`, if any.
fn display(path: &[String], index: &[Option<usize>]) -> String {
    let mut out = String::new();
    for (i, p) in path.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(p);
        if let Some(Some(n)) = index.get(i) {
            out.push_str(&format!("[{n}]"));
        }
    }
    if out.is_empty() {
        "(top level)".into()
    } else {
        out
    }
}

pub(crate) struct Encryptor<'a> {
    pub key: &'a DataKey,
    pub selector: &'a Selector,
    pub mac: Mac,
}

impl Encryptor<'_> {
    /// Every value gets a fresh random IV: values are only ever sealed under a data key made
    /// for this encryption, so there is no IV worth keeping.
    fn seal(&self, aad: &str, kind: &str, bytes: &[u8]) -> Result<String, Error> {
        let iv = cipher::random_iv()?;
        Ok(cipher::seal(self.key, &iv, aad.as_bytes(), bytes, kind)?.format())
    }

    /// Encrypts the leaves of `node` in place and feeds the MAC.
    pub(crate) fn node(&mut self, node: &mut Node, path: &mut Vec<String>) -> Result<(), Error> {
        match node {
            Node::Map(items) => {
                for item in items.iter_mut() {
                    match item {
                        MapItem::Pair(k, v) => {
                            path.push(k.clone());
                            self.node(v, path)?;
                            path.pop();
                        }
                        MapItem::Comment(c) => {
                            if !c.is_empty() && self.selector.encrypts(path) {
                                *c = self.seal(&aad(path), "comment", c.as_bytes())?;
                            }
                        }
                    }
                }
            }
            Node::Seq(items) => {
                for item in items.iter_mut() {
                    self.node(item, path)?;
                }
            }
            Node::Null => {}
            leaf => {
                let encrypted = self.selector.encrypts(path);
                let Some((kind, bytes)) = leaf_bytes(leaf) else {
                    return Ok(());
                };
                let bytes = Zeroizing::new(bytes);
                if kind == "comment" {
                    if encrypted && !bytes.is_empty() {
                        *leaf = Node::Comment(self.seal(&aad(path), kind, &bytes)?);
                    }
                    return Ok(());
                }
                self.mac.add(&bytes, encrypted);
                if encrypted && !bytes.is_empty() {
                    *leaf = Node::Str(self.seal(&aad(path), kind, &bytes)?);
                }
            }
        }
        Ok(())
    }
}

pub(crate) struct Decryptor<'a> {
    pub key: &'a DataKey,
    pub selector: &'a Selector,
    pub mac: Mac,
    /// Comments that looked encrypted but did not open (sops keeps them and warns).
    pub warnings: Vec<String>,
    /// Whether the node being visited is a sequence item.
    pub in_seq: bool,
}

fn parse_value(kind: &str, plain: &[u8], where_: &str) -> Result<Node, Error> {
    let text = || {
        std::str::from_utf8(plain).map_err(|_| {
            Error::at_value(
                ErrorKind::Tampered,
                where_,
                "decrypted value is not UTF-8 text",
            )
        })
    };
    let bad = |what: &str| {
        Error::at_value(
            ErrorKind::Tampered,
            where_,
            format!("decrypted value is not a valid {what}"),
        )
    };
    Ok(match kind {
        "str" | "bytes" => Node::Str(text()?.to_owned()),
        "int" => Node::Int(text()?.parse().map_err(|_| bad("int"))?),
        "float" => Node::Float(text()?.parse().map_err(|_| bad("float"))?),
        "bool" => Node::Bool(match text()? {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => return Err(bad("bool")),
        }),
        "time" => Node::Time(
            parse_rfc3339(text()?)
                .ok_or_else(|| bad("time"))?
                .rfc3339_nano(),
        ),
        "comment" => Node::Comment(text()?.to_owned()),
        other => {
            return Err(Error::at_value(
                ErrorKind::Unsupported,
                where_,
                format!("unknown value type `{other}`"),
            ));
        }
    })
}

impl Decryptor<'_> {
    fn open(&mut self, text: &str, aad_text: &str, where_: &str) -> Result<Node, Error> {
        let sealed = Sealed::parse(text).ok_or_else(|| {
            Error::at_value(ErrorKind::Tampered, where_, "value should be encrypted but is not in sops' `ENC[AES256_GCM,…]` format")
                .with_help("the file was edited by hand; restore it from git or re-encrypt it from its plaintext")
        })?;
        let plain = cipher::open(self.key, &sealed, aad_text.as_bytes()).ok_or_else(|| {
            Error::at_value(ErrorKind::Tampered, where_, "authentication failed: the value was modified, moved from another key, or encrypted with another data key")
                .with_help("restore the file from git or re-encrypt it from its plaintext")
        })?;
        parse_value(&sealed.kind, &plain, where_)
    }

    pub(crate) fn node(
        &mut self,
        node: &mut Node,
        path: &mut Vec<String>,
        index: &mut Vec<Option<usize>>,
    ) -> Result<(), Error> {
        match node {
            Node::Map(items) => {
                for item in items.iter_mut() {
                    match item {
                        MapItem::Pair(k, v) => {
                            path.push(k.clone());
                            index.push(None);
                            self.in_seq = false;
                            self.node(v, path, index)?;
                            index.pop();
                            path.pop();
                        }
                        MapItem::Comment(c) => {
                            if self.selector.encrypts(path) && c.starts_with("ENC[") {
                                match self.open(c, &aad(path), &display(path, index)) {
                                    Ok(Node::Comment(plain)) => *c = plain,
                                    _ => self.warnings.push(format!(
                                        "{}: kept a comment that did not decrypt",
                                        display(path, index)
                                    )),
                                }
                            }
                        }
                    }
                }
            }
            Node::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let Some(last) = index.last_mut() {
                        *last = Some(i);
                    } else {
                        index.push(Some(i));
                    }
                    self.in_seq = true;
                    self.node(item, path, index)?;
                    self.in_seq = false;
                }
                if let Some(last) = index.last_mut() {
                    *last = None;
                }
            }
            Node::Null => {}
            Node::Comment(c) => {
                if self.selector.encrypts(path) && c.starts_with("ENC[") {
                    match self.open(c, &aad(path), &display(path, index)) {
                        Ok(Node::Comment(plain)) => *c = plain,
                        _ => self.warnings.push(format!(
                            "{}: kept a comment that did not decrypt",
                            display(path, index)
                        )),
                    }
                }
            }
            leaf => {
                let encrypted = self.selector.encrypts(path);
                if encrypted {
                    let where_ = display(path, index);
                    match leaf {
                        Node::Str(s) if s.is_empty() => {}
                        Node::Str(s) => {
                            let text = std::mem::take(s);
                            *leaf = self.open(&text, &aad(path), &where_)?;
                            if matches!(leaf, Node::Comment(_)) {
                                // sops writes a comment inside a sequence as an item
                                // `- ENC[…,type:comment]`; it reads back as a comment and
                                // stays out of the MAC. Elsewhere it cannot come from sops.
                                if self.in_seq {
                                    return Ok(());
                                }
                                return Err(Error::at_value(
                                    ErrorKind::Tampered,
                                    &where_,
                                    "a comment was moved into a value",
                                ));
                            }
                        }
                        other => {
                            return Err(Error::at_value(
                                ErrorKind::Tampered,
                                &where_,
                                format!("value should be encrypted but is a plain {}", other.type_name()),
                            )
                            .with_help("the file was edited by hand; restore it from git or re-encrypt it from its plaintext"));
                        }
                    }
                }
                if let Some((_, bytes)) = leaf_bytes(leaf) {
                    self.mac.add(&bytes, encrypted);
                }
            }
        }
        Ok(())
    }
}

/// Encrypts the MAC text for storage (AAD = normalised `lastmodified`).
pub(crate) fn seal_mac(key: &DataKey, mac: &str, aad: &str) -> Result<String, Error> {
    let iv = cipher::random_iv()?;
    Ok(cipher::seal(key, &iv, aad.as_bytes(), mac.as_bytes(), "str")?.format())
}

/// Decrypts the stored MAC; `Err` names the metadata field.
pub(crate) fn open_mac(key: &DataKey, stored: &str, aad: &str) -> Result<String, Error> {
    if stored.is_empty() {
        return Ok(String::new());
    }
    let sealed = Sealed::parse(stored).ok_or_else(|| {
        Error::at_value(
            ErrorKind::Tampered,
            "sops.mac",
            "not in sops' `ENC[AES256_GCM,…]` format",
        )
    })?;
    let plain = cipher::open(key, &sealed, aad.as_bytes()).ok_or_else(|| {
        Error::at_value(
            ErrorKind::Tampered,
            "sops.mac",
            "authentication failed: the MAC or `sops.lastmodified` was modified",
        )
    })?;
    String::from_utf8(plain.to_vec())
        .map_err(|_| Error::at_value(ErrorKind::Tampered, "sops.mac", "not text"))
}
