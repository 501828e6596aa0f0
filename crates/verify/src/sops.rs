//! `verify::sops_exposed`: a value in plaintext outside the identity of an object in a
//! `*.sops.*` file.
//!
//! The existing check (`verify::sops_plaintext`, in `tree.rs`) trusts the file's own selection
//! rule: a value the rule says is encrypted must be `ENC[…]`. A rule that matches nothing
//! (`encrypted_regex: ^(data|stringData)$` over a `stringdata:` typo) makes that check pass on
//! a committed plaintext secret. This one does not read the rule: outside the top-level keys
//! that identify an object, every scalar must be an `ENC[AES256_GCM,…]` value. The same list
//! is enforced by configure before it writes (`secrets::IDENTITY_KEYS`).

use std::path::Path;

use schema::Diagnostic;
use schema::yaml::{Node, Value};

use schema::SOPS_IDENTITY_KEYS as IDENTITY_KEYS;

/// One diagnostic per key path of `doc` holding a plaintext scalar outside [`IDENTITY_KEYS`];
/// paths already reported in `known` (by the selection-rule check) are skipped. Empty strings
/// and nulls carry nothing and pass, as sops leaves them unencrypted. Values are never shown.
pub(crate) fn check_exposed(rel: &Path, doc: &Node, known: &[Diagnostic]) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    // A document without sops metadata is reported whole by the rule check.
    let Some(map) = doc.as_map().filter(|_| doc.get("sops").is_some()) else {
        return out;
    };
    for (k, v) in map {
        let key = k.scalar_text();
        if IDENTITY_KEYS.contains(&key.as_str()) {
            continue;
        }
        walk(rel, v, &key, known, &mut out);
    }
    out
}

fn walk(rel: &Path, n: &Node, path: &str, known: &[Diagnostic], out: &mut Vec<Diagnostic>) {
    match &n.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                walk(rel, v, &format!("{path}.{}", k.scalar_text()), known, out);
            }
        }
        Value::Seq(items) => {
            for item in items {
                walk(rel, item, path, known, out);
            }
        }
        Value::Null => {}
        Value::Str(s) if s.is_empty() || s.starts_with("ENC[AES256_GCM,") => {}
        _ => {
            if known.iter().chain(out.iter()).any(|d| d.path == path) {
                return;
            }
            out.push(
                Diagnostic::error(
                    "verify::sops_exposed",
                    path,
                    format!(
                        "`{path}` is in plaintext in a sops file: only {} may stay unencrypted",
                        IDENTITY_KEYS.join(", ")
                    ),
                )
                .at(Some(n.location(rel)))
                .with_help("the file's creation rule does not encrypt this key (a typo such as `stringdata:`, or an `encrypted_regex` that matches nothing): fix the key or the rule and run `cargo xtask configure`, then rotate the secret, which has been in plaintext"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schema::yaml::{Limits, load};

    fn check(text: &str) -> Vec<Diagnostic> {
        let l = load(text, Path::new("s.sops.yaml"), Limits::MANIFESTS);
        check_exposed(Path::new("s.sops.yaml"), &l.documents[0], &[])
    }

    #[test]
    fn a_typo_outside_the_encrypted_keys_is_reported_by_path_without_the_value() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ntype: Opaque\nstringdata:\n  password: hunter2\n  empty: \"\"\nsops:\n  mac: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n  encrypted_regex: ^(data|stringData)$\n";
        let d = check(text);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].code, "verify::sops_exposed");
        assert_eq!(d[0].path, "stringdata.password");
        assert!(!format!("{d:?}").contains("hunter2"));
        assert_eq!(d[0].location.as_ref().map(|l| l.line), Some(7));
    }

    #[test]
    fn encrypted_values_and_the_identity_pass() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  labels: {a: b}\nimmutable: true\nstringData:\n  password: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n  list:\n    - ENC[AES256_GCM,data:x,iv:y,tag:z,type:int]\n  none: null\nsops:\n  mac: x\n";
        assert!(check(text).is_empty());
    }
}
