//! The last line of defence of a rendered secret: after sealing, no value may be left in
//! plaintext outside the object's identity.
//!
//! Which leaves sops encrypts is decided by the creation rule (`encrypted_regex`, suffixes),
//! and a template override or a `.sops.yaml` whose regex matches nothing (`stringdata:` instead
//! of `stringData:`) leaves a secret value in plaintext in a file named `*.sops.*`. This check
//! does not trust the rule: it looks at the sealed text.

use crate::error::Error;
use crate::yaml::{MapItem, Node, parse_documents};

/// Top-level keys that identify an object and may stay in plaintext (shared with verify).
pub use schema::SOPS_IDENTITY_KEYS as IDENTITY_KEYS;

/// The dotted key paths (list indices left out, as in sops' AAD) of every scalar in `text`
/// (a sealed sops YAML file) that is outside [`IDENTITY_KEYS`] and not an `ENC[AES256_GCM,…]`
/// value. Empty strings and nulls carry nothing and are not listed (sops leaves them as they
/// are); comments are not values. The values themselves are never returned.
pub fn plaintext_outside_identity(text: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for doc in parse_documents(text)? {
        let Node::Map(items) = &doc else {
            out.push("(document root)".to_owned());
            continue;
        };
        for item in items {
            if let MapItem::Pair(key, value) = item
                && !IDENTITY_KEYS.contains(&key.as_str())
            {
                walk(value, key, &mut out);
            }
        }
    }
    Ok(out)
}

fn walk(node: &Node, path: &str, out: &mut Vec<String>) {
    match node {
        Node::Map(items) => {
            for item in items {
                if let MapItem::Pair(key, value) = item {
                    walk(value, &format!("{path}.{key}"), out);
                }
            }
        }
        Node::Seq(items) => {
            for item in items {
                walk(item, path, out);
            }
        }
        Node::Null | Node::Comment(_) => {}
        Node::Str(s) if s.is_empty() || s.starts_with("ENC[AES256_GCM,") => {}
        _ => {
            if !out.iter().any(|p| p == path) {
                out.push(path.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_plaintext_values_outside_the_identity_by_path_only() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  labels: {a: b}\ntype: Opaque\nimmutable: true\nstringdata:\n  password: hunter2\n  empty: \"\"\n  none: ~\ndata:\n  k: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\nlist:\n  - 1\n  - ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\nsops:\n  mac: x\n";
        assert_eq!(
            plaintext_outside_identity(text).unwrap(),
            ["stringdata.password", "list"]
        );
        let sealed = "apiVersion: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\nsecret: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n";
        assert!(plaintext_outside_identity(sealed).unwrap().is_empty());
    }
}
