//! Which leaves sops encrypts: the selection rule and how it is checked against every
//! component of a key path (sops-format.md §6).

use regex::Regex;

use crate::error::{Error, ErrorKind};

/// The one selection rule of a file (sops allows at most one).
#[derive(Debug, Clone)]
pub enum SelectionRule {
    /// Encrypt leaves none of whose path components ends with the suffix (sops' default,
    /// `_unencrypted`).
    UnencryptedSuffix(String),
    /// Encrypt leaves some path component of which ends with the suffix.
    EncryptedSuffix(String),
    /// Encrypt leaves none of whose path components matches (a search, like Go's `regexp.Match`).
    UnencryptedRegex(String),
    /// Encrypt leaves some path component of which matches (cluster-template: `^(data|stringData)$`).
    EncryptedRegex(String),
}

impl PartialEq for SelectionRule {
    fn eq(&self, other: &SelectionRule) -> bool {
        self.key() == other.key() && self.value() == other.value()
    }
}

impl Eq for SelectionRule {}

impl Default for SelectionRule {
    fn default() -> SelectionRule {
        SelectionRule::UnencryptedSuffix("_unencrypted".into())
    }
}

/// The metadata / `.sops.yaml` key names of the rules sops knows, in sops' struct order.
pub(crate) const RULE_KEYS: [&str; 6] = [
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
];

impl SelectionRule {
    /// Builds a rule from its metadata key; comment-regex rules are refused.
    pub(crate) fn from_key(key: &str, value: &str) -> Result<SelectionRule, Error> {
        let rule = match key {
            "unencrypted_suffix" => SelectionRule::UnencryptedSuffix(value.into()),
            "encrypted_suffix" => SelectionRule::EncryptedSuffix(value.into()),
            "unencrypted_regex" => SelectionRule::UnencryptedRegex(value.into()),
            "encrypted_regex" => SelectionRule::EncryptedRegex(value.into()),
            other => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("`{other}` is not supported"),
                )
                .with_help(
                    "use `encrypted_regex` (Kubernetes files) or the default `unencrypted_suffix`",
                ));
            }
        };
        rule.compile()?;
        Ok(rule)
    }

    /// The metadata key this rule is written under.
    pub fn key(&self) -> &'static str {
        match self {
            SelectionRule::UnencryptedSuffix(_) => "unencrypted_suffix",
            SelectionRule::EncryptedSuffix(_) => "encrypted_suffix",
            SelectionRule::UnencryptedRegex(_) => "unencrypted_regex",
            SelectionRule::EncryptedRegex(_) => "encrypted_regex",
        }
    }

    /// The suffix or pattern.
    pub fn value(&self) -> &str {
        match self {
            SelectionRule::UnencryptedSuffix(s)
            | SelectionRule::EncryptedSuffix(s)
            | SelectionRule::UnencryptedRegex(s)
            | SelectionRule::EncryptedRegex(s) => s,
        }
    }

    pub(crate) fn compile(&self) -> Result<Selector, Error> {
        let regex = |p: &str| {
            Regex::new(p).map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("invalid `{}` pattern `{p}`: {e}", self.key()),
                )
                .with_help(
                    "sops uses Go RE2 syntax; Rust's regex crate accepts the same constructs",
                )
            })
        };
        Ok(match self {
            SelectionRule::UnencryptedSuffix(s) => Selector::UnencryptedSuffix(s.clone()),
            SelectionRule::EncryptedSuffix(s) => Selector::EncryptedSuffix(s.clone()),
            SelectionRule::UnencryptedRegex(p) => Selector::UnencryptedRegex(regex(p)?),
            SelectionRule::EncryptedRegex(p) => Selector::EncryptedRegex(regex(p)?),
        })
    }
}

/// A compiled [`SelectionRule`].
pub(crate) enum Selector {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
}

impl Selector {
    /// sops' `shouldBeEncrypted` for a path of mapping keys.
    pub(crate) fn encrypts(&self, path: &[String]) -> bool {
        match self {
            Selector::UnencryptedSuffix(s) => !path.iter().any(|p| p.ends_with(s.as_str())),
            Selector::EncryptedSuffix(s) => path.iter().any(|p| p.ends_with(s.as_str())),
            Selector::UnencryptedRegex(r) => !path.iter().any(|p| r.is_match(p)),
            Selector::EncryptedRegex(r) => path.iter().any(|p| r.is_match(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_component_is_checked() {
        let s = SelectionRule::EncryptedRegex("^(data|stringData)$".into())
            .compile()
            .unwrap();
        assert!(s.encrypts(&p(&["stringData", "password"])));
        assert!(s.encrypts(&p(&["metadata", "annotations", "data"])));
        assert!(!s.encrypts(&p(&["metadata", "name"])));
        assert!(!s.encrypts(&p(&[])));
        let d = SelectionRule::default().compile().unwrap();
        assert!(d.encrypts(&p(&[])));
        assert!(!d.encrypts(&p(&["a", "b_unencrypted", "c"])));
    }
}
