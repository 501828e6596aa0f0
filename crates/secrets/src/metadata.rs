//! The `sops:` block: reading every form sops has written, writing the 3.10 layout.

use crate::error::{Error, ErrorKind};
use crate::rules::{RULE_KEYS, SelectionRule};
use crate::time::parse_rfc3339;
use crate::yaml::{MapItem, Node};

/// The sops version this crate writes (sops-format.md §15: every Flux since 2.0 decrypts it;
/// the sops CLI accepts any semver ≥ 3.3.0).
pub const SOPS_VERSION: &str = "3.10.2";

/// One age recipient entry: the public key and the armored age file holding the data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeEntry {
    /// `age1…` as written in the file.
    pub recipient: String,
    /// The armored age file (`-----BEGIN AGE ENCRYPTED FILE-----` …).
    pub enc: String,
}

/// The parts of a file's `sops` metadata that matter for age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Age entries, in file order.
    pub age: Vec<AgeEntry>,
    /// `lastmodified` as written.
    pub lastmodified: String,
    /// The encrypted MAC (`ENC[…,type:str]`); empty when absent.
    pub mac: String,
    /// The selection rule (sops' default when none is written).
    pub selection: SelectionRule,
    /// Whether the MAC covers only encrypted values.
    pub mac_only_encrypted: bool,
    /// `version`; the sops CLI refuses files without it.
    pub version: Option<String>,
    /// Other key types present (pgp, kms, …) with entries; this crate cannot use them.
    pub other_key_types: Vec<String>,
}

fn meta_err(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Metadata, message)
}

fn text_of(node: &Node) -> Option<String> {
    match node {
        Node::Str(s) => Some(s.clone()),
        Node::Time(t) => Some(t.clone()),
        Node::Int(i) => Some(i.to_string()),
        Node::Float(f) => Some(crate::yaml::format_float(*f)),
        Node::Null => Some(String::new()),
        _ => None,
    }
}

impl Metadata {
    /// Reads the metadata mapping (the value of the `sops` key).
    pub(crate) fn from_node(node: &Node) -> Result<Metadata, Error> {
        let Node::Map(items) = node else {
            return Err(meta_err(format!(
                "`sops` is a {}, expected a mapping",
                node.type_name()
            )));
        };
        let mut md = Metadata {
            age: Vec::new(),
            lastmodified: String::new(),
            mac: String::new(),
            selection: SelectionRule::default(),
            mac_only_encrypted: false,
            version: None,
            other_key_types: Vec::new(),
        };
        let mut rule: Option<SelectionRule> = None;
        for item in items {
            let MapItem::Pair(key, value) = item else {
                continue;
            };
            match key.as_str() {
                "age" => md.age = read_age(value)?,
                "lastmodified" => {
                    md.lastmodified = text_of(value)
                        .ok_or_else(|| meta_err("sops.lastmodified: expected a timestamp"))?
                }
                "mac" => {
                    md.mac =
                        text_of(value).ok_or_else(|| meta_err("sops.mac: expected a string"))?
                }
                "version" => md.version = text_of(value).filter(|v| !v.is_empty()),
                "mac_only_encrypted" => md.mac_only_encrypted = matches!(value, Node::Bool(true)),
                "key_groups"
                    if !matches!(value, Node::Null | Node::Seq(_))
                        || matches!(value, Node::Seq(v) if !v.is_empty()) =>
                {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        "the file uses key groups (Shamir secret sharing), which are not supported",
                    )
                    .with_help("decrypt it with the sops CLI"));
                }
                k if RULE_KEYS.contains(&k) => {
                    let text = text_of(value)
                        .ok_or_else(|| meta_err(format!("sops.{k}: expected a string")))?;
                    if text.is_empty() {
                        continue;
                    }
                    if let Some(existing) = &rule {
                        return Err(meta_err(format!(
                            "sops.{k}: the file also sets `{}`; sops allows only one selection rule",
                            existing.key()
                        )));
                    }
                    rule =
                        Some(SelectionRule::from_key(k, &text).map_err(|e| e.in_source("sops"))?);
                }
                "pgp" | "kms" | "gcp_kms" | "azure_kv" | "hc_vault" | "hckms" => {
                    if matches!(value, Node::Seq(v) if v.iter().any(|i| !matches!(i, Node::Comment(_))))
                    {
                        md.other_key_types.push(key.clone());
                    }
                }
                _ => {}
            }
        }
        if let Some(rule) = rule {
            md.selection = rule;
        }
        Ok(md)
    }

    /// The `lastmodified` normalised as sops uses it for the MAC's additional data.
    pub(crate) fn mac_aad(&self) -> Result<String, Error> {
        parse_rfc3339(&self.lastmodified)
            .map(|t| t.rfc3339())
            .ok_or_else(|| {
                meta_err(format!(
                    "sops.lastmodified `{}` is not an RFC 3339 timestamp",
                    self.lastmodified
                ))
            })
    }

    /// The block sops 3.10 writes: `age`, `lastmodified`, `mac`, the rule,
    /// `mac_only_encrypted` (only when true), `version`.
    pub(crate) fn to_node(&self) -> Node {
        let age = self
            .age
            .iter()
            .map(|e| {
                Node::Map(vec![
                    MapItem::Pair("recipient".into(), Node::Str(e.recipient.clone())),
                    MapItem::Pair("enc".into(), Node::Str(e.enc.clone())),
                ])
            })
            .collect();
        let mut items = vec![
            MapItem::Pair("age".into(), Node::Seq(age)),
            MapItem::Pair("lastmodified".into(), Node::Str(self.lastmodified.clone())),
            MapItem::Pair("mac".into(), Node::Str(self.mac.clone())),
            MapItem::Pair(
                self.selection.key().into(),
                Node::Str(self.selection.value().into()),
            ),
        ];
        if self.mac_only_encrypted {
            items.push(MapItem::Pair("mac_only_encrypted".into(), Node::Bool(true)));
        }
        items.push(MapItem::Pair(
            "version".into(),
            Node::Str(self.version.clone().unwrap_or_else(|| SOPS_VERSION.into())),
        ));
        Node::Map(items)
    }
}

fn read_age(value: &Node) -> Result<Vec<AgeEntry>, Error> {
    let items = match value {
        Node::Null => return Ok(Vec::new()),
        Node::Seq(items) => items,
        _ => return Err(meta_err("sops.age: expected a list")),
    };
    let mut out = Vec::new();
    for (i, item) in items
        .iter()
        .filter(|i| !matches!(i, Node::Comment(_)))
        .enumerate()
    {
        let recipient = item.get("recipient").and_then(text_of).unwrap_or_default();
        let enc = item
            .get("enc")
            .and_then(text_of)
            .ok_or_else(|| meta_err(format!("sops.age[{i}].enc: missing")))?;
        out.push(AgeEntry {
            recipient: recipient.trim().to_owned(),
            enc,
        });
    }
    Ok(out)
}
