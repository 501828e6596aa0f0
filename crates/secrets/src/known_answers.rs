//! Known-answer tests that need the crate's internals: re-encrypting every value of the shared
//! vectors with the file's own IV must reproduce the stored `ENC[…]` bytes exactly (an exact
//! test of AAD, type tags and plaintext serialisation), and the age layer must open getsops'
//! key-source vector.

use std::path::PathBuf;

use crate::age::{Unwrapped, decrypt_armored, parse_identities};
use crate::cipher::{self, DataKey, Sealed};
use crate::metadata::Metadata;
use crate::yaml::{MapItem, Node, parse_documents};

fn vectors() -> PathBuf {
    let shared = std::env::var_os("CLUSTER_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    shared.join("vectors/sops")
}

fn read(rel: &str) -> String {
    let path = vectors().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Re-seals every `ENC[…]` found in the tree; returns how many were checked.
fn reseal_all(node: &Node, path: &mut Vec<String>, key: &DataKey) -> usize {
    let check = |text: &str, path: &[String]| -> usize {
        let Some(sealed) = Sealed::parse(text) else {
            return 0;
        };
        let aad = format!("{}:", path.join(":"));
        let plain = cipher::open(key, &sealed, aad.as_bytes())
            .unwrap_or_else(|| panic!("{aad}: does not open"));
        let iv: [u8; 32] = sealed.iv.as_slice().try_into().unwrap();
        let again = cipher::seal(key, &iv, aad.as_bytes(), &plain, &sealed.kind)
            .unwrap()
            .format();
        assert_eq!(again, text, "{aad}");
        1
    };
    match node {
        Node::Map(items) => items
            .iter()
            .map(|item| match item {
                MapItem::Pair(k, v) => {
                    path.push(k.clone());
                    let n = reseal_all(v, path, key);
                    path.pop();
                    n
                }
                MapItem::Comment(c) => check(c, path),
            })
            .sum(),
        Node::Seq(items) => items.iter().map(|i| reseal_all(i, path, key)).sum(),
        Node::Str(s) | Node::Comment(s) => check(s, path),
        _ => 0,
    }
}

#[test]
fn every_vector_value_reencrypts_to_identical_bytes() {
    let cases = [
        (
            "flux-kustomize-controller/age.sops.yaml",
            "flux-kustomize-controller/age.agekey",
            1,
        ),
        (
            "flux-kustomize-controller/global-secret.sops.yaml",
            "flux-kustomize-controller/age-global.agekey",
            1,
        ),
        (
            "flux-kustomize-controller/file.sops.json",
            "flux-kustomize-controller/age.agekey",
            1,
        ),
        (
            "rops-sops-references/age_example.sops.yaml",
            "rops-sops-references/rops-mock.agekey",
            7,
        ),
        (
            "rops-sops-references/age_encrypted_regex.sops.yaml",
            "rops-sops-references/rops-mock.agekey",
            2,
        ),
        (
            "rops-sops-references/age_encrypted_suffix.sops.yaml",
            "rops-sops-references/rops-mock.agekey",
            5,
        ),
        (
            "rops-sops-references/age_unencrypted_regex.sops.yaml",
            "rops-sops-references/rops-mock.agekey",
            2,
        ),
        (
            "rops-sops-references/age_unencrypted_suffix.sops.yaml",
            "rops-sops-references/rops-mock.agekey",
            2,
        ),
        (
            "rops-sops-references/age_mac_only_encrypted.sops.yaml",
            "rops-sops-references/rops-mock.agekey",
            2,
        ),
        (
            "rops-sops-references/age_empty_value.sops.yaml",
            "rops-sops-references/rops-mock.agekey",
            0,
        ),
    ];
    for (file, key_file, min_values) in cases {
        let identities = parse_identities(&read(key_file)).unwrap();
        let mut docs = parse_documents(&read(file)).unwrap();
        let meta_node = docs[0].get("sops").unwrap().clone();
        let md = Metadata::from_node(&meta_node).unwrap();
        let Unwrapped::Plaintext(bytes) = decrypt_armored(&md.age[0].enc, &identities).unwrap()
        else {
            panic!("{file}: key")
        };
        let key = DataKey::from_bytes(&bytes).unwrap();
        if let Node::Map(items) = &mut docs[0] {
            items.retain(|i| !matches!(i, MapItem::Pair(k, _) if k == "sops"));
        }
        let n: usize = docs
            .iter()
            .map(|d| reseal_all(d, &mut Vec::new(), &key))
            .sum();
        assert_eq!(n, min_values, "{file}: values checked");
        // The MAC, with AAD = lastmodified.
        let sealed = Sealed::parse(&md.mac).unwrap();
        let aad = md.mac_aad().unwrap();
        let plain = cipher::open(&key, &sealed, aad.as_bytes()).unwrap();
        assert_eq!(plain.len(), 128, "{file}");
        let iv: [u8; 32] = sealed.iv.as_slice().try_into().unwrap();
        assert_eq!(
            cipher::seal(&key, &iv, aad.as_bytes(), &plain, "str")
                .unwrap()
                .format(),
            md.mac,
            "{file}: mac"
        );
    }
}

#[test]
fn getsops_keysource_vector_unwraps() {
    let identities =
        parse_identities(&read("getsops-age-keysource-test/mockIdentity.agekey")).unwrap();
    let armored = read("getsops-age-keysource-test/mockEncryptedKey.age");
    let Unwrapped::Plaintext(data) = decrypt_armored(&armored, &identities).unwrap() else {
        panic!("no match")
    };
    assert_eq!(
        data.as_slice(),
        read("getsops-age-keysource-test/mockEncryptedKey.plaintext").as_bytes()
    );
}
