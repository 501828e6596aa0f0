//! `.sops.yaml`: creation rules (first match wins) and the YAML store's indent.

use std::path::{Path, PathBuf};

use regex::Regex;

use crate::age::Recipient;
use crate::error::{Error, ErrorKind};
use crate::rules::{RULE_KEYS, SelectionRule};
use crate::yaml::{MapItem, Node, parse_documents};

/// A parsed `.sops.yaml`.
#[derive(Debug, Clone)]
pub struct SopsConfig {
    rules: Vec<CreationRule>,
    indent: usize,
}

/// One entry of `creation_rules`.
#[derive(Debug, Clone)]
pub struct CreationRule {
    path_regex: Option<Regex>,
    /// The age recipients to encrypt to (at least one).
    pub recipients: Vec<Recipient>,
    /// Which leaves are encrypted.
    pub selection: SelectionRule,
    /// Whether the MAC covers only encrypted values.
    pub mac_only_encrypted: bool,
}

impl CreationRule {
    /// The rule's `path_regex`, if any.
    pub fn path_regex(&self) -> Option<&str> {
        self.path_regex.as_ref().map(Regex::as_str)
    }
}

fn config_err(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Config, message)
}

fn scalar_text(node: &Node) -> Option<String> {
    match node {
        Node::Str(s) => Some(s.clone()),
        Node::Int(i) => Some(i.to_string()),
        Node::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_recipients(node: &Node, where_: &str) -> Result<Vec<Recipient>, Error> {
    let texts: Vec<String> = match node {
        Node::Str(s) => s.split(',').map(str::to_owned).collect(),
        Node::Seq(items) => items
            .iter()
            .filter(|i| !matches!(i, Node::Comment(_)))
            .map(|i| {
                scalar_text(i)
                    .ok_or_else(|| config_err(format!("{where_}.age: list items must be strings")))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(config_err(format!(
                "{where_}.age: expected a string or a list of recipients"
            )));
        }
    };
    texts
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(|t| Recipient::parse(t).map_err(|e| e.in_source(&format!("{where_}.age"))))
        .collect()
}

fn parse_rule(node: &Node, index: usize) -> Result<CreationRule, Error> {
    let where_ = format!("creation_rules[{index}]");
    let Node::Map(items) = node else {
        return Err(config_err(format!("{where_}: expected a mapping")));
    };
    let mut path_regex = None;
    let mut recipients = Vec::new();
    let mut selection: Option<SelectionRule> = None;
    let mut mac_only_encrypted = false;
    for item in items {
        let MapItem::Pair(key, value) = item else {
            continue;
        };
        match key.as_str() {
            "path_regex" => {
                let text = scalar_text(value)
                    .ok_or_else(|| config_err(format!("{where_}.path_regex: expected a string")))?;
                let re = Regex::new(&text).map_err(|e| {
                    config_err(format!(
                        "{where_}.path_regex: invalid pattern `{text}`: {e}"
                    ))
                })?;
                path_regex = Some(re);
            }
            "age" => recipients = parse_recipients(value, &where_)?,
            "mac_only_encrypted" => {
                mac_only_encrypted = match value {
                    Node::Bool(b) => *b,
                    Node::Null => false,
                    _ => {
                        return Err(config_err(format!(
                            "{where_}.mac_only_encrypted: expected true or false"
                        )));
                    }
                }
            }
            k if RULE_KEYS.contains(&k) => {
                let text = scalar_text(value)
                    .ok_or_else(|| config_err(format!("{where_}.{k}: expected a string")))?;
                if let Some(existing) = &selection {
                    return Err(config_err(format!(
                        "{where_}: both `{}` and `{k}` are set; sops allows only one",
                        existing.key()
                    )));
                }
                selection =
                    Some(SelectionRule::from_key(k, &text).map_err(|e| e.in_source(&where_))?);
            }
            "key_groups" | "shamir_threshold" => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("{where_}.{key}: key groups (Shamir) are not supported"),
                )
                .with_help("list the age recipients directly under `age:`"));
            }
            "pgp"
            | "kms"
            | "gcp_kms"
            | "azure_keyvault"
            | "hc_vault_transit_uri"
            | "aws_profile"
            | "hckms"
                if !matches!(value, Node::Null) && value != &Node::Str(String::new()) =>
            {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("{where_}.{key}: only age recipients are supported"),
                ));
            }
            // Keys sops knows that do not change what is written for age (e.g. `filename_regex`
            // is obsolete, `encrypted_comment_regex` is refused above).
            _ => {}
        }
    }
    Ok(CreationRule {
        path_regex,
        recipients,
        selection: selection.unwrap_or_default(),
        mac_only_encrypted,
    })
}

impl SopsConfig {
    /// Parses `.sops.yaml` text.
    pub fn parse(text: &str) -> Result<SopsConfig, Error> {
        let docs = parse_documents(text)?;
        let root = docs
            .first()
            .ok_or_else(|| config_err("the file is empty"))?;
        let mut rules = Vec::new();
        match root.get("creation_rules") {
            Some(Node::Seq(items)) => {
                for (i, item) in items
                    .iter()
                    .filter(|i| !matches!(i, Node::Comment(_)))
                    .enumerate()
                {
                    rules.push(parse_rule(item, i)?);
                }
            }
            Some(Node::Null) | None => {}
            Some(_) => return Err(config_err("creation_rules: expected a list")),
        }
        let indent = match root
            .get("stores")
            .and_then(|s| s.get("yaml"))
            .and_then(|y| y.get("indent"))
        {
            None | Some(Node::Null) => 4,
            Some(Node::Int(i)) if (2..=9).contains(i) => *i as usize,
            Some(other) => {
                return Err(config_err(format!(
                    "stores.yaml.indent: expected an integer from 2 to 9, found {}",
                    scalar_text(other).unwrap_or_else(|| other.type_name().into())
                )));
            }
        };
        Ok(SopsConfig { rules, indent })
    }

    /// Reads and parses a `.sops.yaml` file: not through a symlink, a regular file of at most
    /// [`crate::MAX_CONFIG_BYTES`].
    pub fn load(path: &Path) -> Result<SopsConfig, Error> {
        let text = schema::repofile::read_text(path, crate::MAX_CONFIG_BYTES)
            .map_err(|e| Error::read(path, "cannot read sops config", e))?;
        SopsConfig::parse(&text).map_err(|e| e.in_file(path))
    }

    /// Finds `.sops.yaml` (or `.sops.yml`) in `start` or the nearest parent directory, like sops.
    pub fn find(start: &Path) -> Option<PathBuf> {
        start.ancestors().take(100).find_map(|dir| {
            [".sops.yaml", ".sops.yml"]
                .iter()
                .map(|n| dir.join(n))
                .find(|p| p.is_file())
        })
    }

    /// The first rule whose `path_regex` matches `relative_path` (relative to the config's
    /// directory, `/`-separated), or a rule without `path_regex`.
    pub fn rule_for(&self, relative_path: &str) -> Result<&CreationRule, Error> {
        let rule = self
            .rules
            .iter()
            .find(|r| {
                r.path_regex
                    .as_ref()
                    .is_none_or(|re| re.is_match(relative_path))
            })
            .ok_or_else(|| {
                config_err(format!(
                    "no creation rule in .sops.yaml matches `{relative_path}`"
                ))
                .with_help("add a `path_regex` that matches the file, as sops would need too")
            })?;
        if rule.recipients.is_empty() {
            return Err(config_err(format!(
                "the creation rule for `{relative_path}` has no age recipients"
            ))
            .with_help("set `age:` to the public key (`age1…`) from your key file"));
        }
        Ok(rule)
    }

    /// Spaces per level in YAML output (`stores.yaml.indent`, default 4).
    pub fn indent(&self) -> usize {
        self.indent
    }

    /// The creation rules, in order.
    pub fn rules(&self) -> &[CreationRule] {
        &self.rules
    }

    /// Refuses a config in which any creation rule encrypts to anything but exactly `allowed`
    /// (each once): a `.sops.yaml` that came from a pull request (or a template override) must
    /// not add a recipient, which would give its owner every secret encrypted from then on.
    /// The error names each such rule and the foreign and missing recipients (public keys
    /// only).
    pub fn require_recipients(&self, allowed: &[Recipient]) -> Result<(), Error> {
        let mut problems = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let foreign: Vec<String> = rule
                .recipients
                .iter()
                .filter(|r| !allowed.contains(r))
                .map(ToString::to_string)
                .collect();
            let missing: Vec<String> = allowed
                .iter()
                .filter(|r| !rule.recipients.contains(r))
                .map(ToString::to_string)
                .collect();
            let distinct: std::collections::HashSet<&Recipient> = rule.recipients.iter().collect();
            let repeated = distinct.len() != rule.recipients.len();
            if foreign.is_empty() && missing.is_empty() && !repeated {
                continue;
            }
            let mut what = Vec::new();
            if !foreign.is_empty() {
                what.push(format!("encrypts to {}", foreign.join(", ")));
            }
            if !missing.is_empty() {
                what.push(format!("not to {}", missing.join(", ")));
            }
            if repeated {
                what.push("lists a recipient twice".to_owned());
            }
            let name = match rule.path_regex() {
                Some(re) => format!("creation rule {} (path_regex `{re}`)", i + 1),
                None => format!("creation rule {}", i + 1),
            };
            problems.push(format!("{name} {}", what.join(" and ")));
        }
        if problems.is_empty() {
            return Ok(());
        }
        let mine = allowed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Err(config_err(format!(
            "{}; secrets are only encrypted to {mine} (from age.key)",
            problems.join("; ")
        ))
        .with_help("a creation rule may only name the age.key recipient: restore `age:` in .sops.yaml (or its template override) to that key; a team that needs more recipients must add them on purpose, not through a rendered file"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29";

    #[test]
    fn only_the_allowed_recipients_pass() {
        let mine = crate::Identity::generate().unwrap().recipient();
        let theirs = crate::Identity::generate().unwrap().recipient();
        let cfg = |age: String| {
            SopsConfig::parse(&format!(
                "creation_rules:\n  - path_regex: talos/.*\n    age: {mine}\n  - path_regex: kubernetes/.*\n    age: {age}\n"
            ))
            .unwrap()
        };
        cfg(mine.to_string()).require_recipients(&[mine]).unwrap();
        let err = cfg(format!("{mine},{theirs}"))
            .require_recipients(&[mine])
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "creation rule 2 (path_regex `kubernetes/.*`) encrypts to {theirs}; secrets are only encrypted to {mine}"
            )),
            "{text}"
        );
        let err = cfg(theirs.to_string())
            .require_recipients(&[mine])
            .unwrap_err();
        assert!(err.to_string().contains(&format!("not to {mine}")), "{err}");
        let err = cfg(format!("{mine},{mine}"))
            .require_recipients(&[mine])
            .unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn cluster_template_rules() {
        let text = format!(
            "---\ncreation_rules:\n  - path_regex: talos/.*\\.sops\\.ya?ml\n    mac_only_encrypted: true\n    age: \"{R}\"\n  - path_regex: (bootstrap|kubernetes)/.*\\.sops\\.ya?ml\n    encrypted_regex: \"^(data|stringData)$\"\n    mac_only_encrypted: true\n    age: [\"{R}\", \" {R}\"]\nstores:\n  yaml:\n    indent: 2\n"
        );
        let c = SopsConfig::parse(&text).unwrap();
        assert_eq!(c.indent(), 2);
        let talos = c.rule_for("talos/talsecret.sops.yaml").unwrap();
        assert_eq!(
            talos.selection,
            SelectionRule::UnencryptedSuffix("_unencrypted".into())
        );
        assert!(talos.mac_only_encrypted);
        let k = c.rule_for("kubernetes/apps/x/secret.sops.yaml").unwrap();
        assert_eq!(
            k.selection,
            SelectionRule::EncryptedRegex("^(data|stringData)$".into())
        );
        assert_eq!(k.recipients.len(), 2);
        assert!(c.rule_for("README.md").is_err());
    }

    #[test]
    fn refuses_two_rules_and_pq_keys() {
        let two = format!(
            "creation_rules:\n  - age: {R}\n    encrypted_regex: a\n    encrypted_suffix: b\n"
        );
        assert!(
            SopsConfig::parse(&two)
                .unwrap_err()
                .to_string()
                .contains("only one")
        );
        let pq = "creation_rules:\n  - age: age1pq1abc\n";
        assert!(
            SopsConfig::parse(pq)
                .unwrap_err()
                .to_string()
                .contains("post-quantum")
        );
    }
}
