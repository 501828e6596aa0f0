//! Known-answer tests over `../shared/vectors/sops/` (sops-format.md §20.1): every X25519
//! vector decrypts to its plaintext with the MAC verified; the post-quantum vector is refused
//! with a message; tampering is reported with the path that failed.

mod common;

use std::path::Path;

use base64::Engine;
use secrets::{
    ErrorKind, FileStatus, Identity, decrypt, decrypt_dotenv, format_yaml, load_identities_from,
    status,
};

fn ids(dir: &Path, name: &str) -> Vec<Identity> {
    load_identities_from(&dir.join(name)).unwrap()
}

/// Semantic comparison: both sides written by the same yaml.v3-style emitter.
fn same_yaml(decrypted: &str, plaintext: &str) {
    assert_eq!(
        format_yaml(decrypted, 2).unwrap(),
        format_yaml(plaintext, 2).unwrap()
    );
}

#[test]
fn flux_and_rops_yaml_vectors_decrypt_to_their_plaintext() {
    let v = common::vectors();
    let cases = [
        ("flux-kustomize-controller", "age", "age.agekey"),
        (
            "flux-kustomize-controller",
            "global-secret",
            "age-global.agekey",
        ),
        ("rops-sops-references", "age_example", "rops-mock.agekey"),
        (
            "rops-sops-references",
            "age_encrypted_regex",
            "rops-mock.agekey",
        ),
        (
            "rops-sops-references",
            "age_encrypted_suffix",
            "rops-mock.agekey",
        ),
        (
            "rops-sops-references",
            "age_unencrypted_regex",
            "rops-mock.agekey",
        ),
        (
            "rops-sops-references",
            "age_unencrypted_suffix",
            "rops-mock.agekey",
        ),
        (
            "rops-sops-references",
            "age_mac_only_encrypted",
            "rops-mock.agekey",
        ),
        (
            "rops-sops-references",
            "age_empty_value",
            "rops-mock.agekey",
        ),
    ];
    for (dir, name, key) in cases {
        let dir = v.join(dir);
        let text = common::read(&dir.join(format!("{name}.sops.yaml")));
        let dec = decrypt(&text, &ids(&dir, key)).unwrap_or_else(|e| panic!("{name}: {e}"));
        same_yaml(
            &dec.to_yaml(4),
            &common::read(&dir.join(format!("{name}.plaintext.yaml"))),
        );
        // rops writes no `version`: the reader accepts it but says the CLI will not.
        let rops = dir.ends_with("rops-sops-references");
        assert_eq!(dec.metadata().version.is_none(), rops, "{name}");
        assert_eq!(
            dec.warnings()
                .iter()
                .any(|w| w.contains("Version string empty")),
            rops,
            "{name}"
        );
        let expected_status = if rops { "not" } else { "enc" };
        let got = match status(&text) {
            FileStatus::Encrypted => "enc",
            FileStatus::NotEncrypted { .. } => "not",
            FileStatus::Malformed { reason } => panic!("{name}: {reason}"),
        };
        assert_eq!(got, expected_status, "{name}");
    }
}

#[test]
fn json_dotenv_and_nested_vectors_decrypt() {
    let dir = common::vectors().join("flux-kustomize-controller");
    let key = ids(&dir, "age.agekey");
    // JSON is YAML too; the MAC covers the same values.
    let dec = decrypt(&common::read(&dir.join("file.sops.json")), &key).unwrap();
    same_yaml(
        &dec.to_yaml(2),
        &common::read(&dir.join("file.plaintext.json")),
    );
    assert_eq!(dec.metadata().version.as_deref(), Some("3.9.0"));

    let dec = decrypt_dotenv(&common::read(&dir.join("env.sops.env")), &key).unwrap();
    let env = common::read(&dir.join("env.plaintext.env"));
    let (k, v) = env.trim_end().split_once('=').unwrap();
    same_yaml(&dec.to_yaml(2), &format!("{k}: {v}\n"));

    // A Secret whose `data.key` is base64 of a sops JSON file (Flux finds it by `"mac": "ENC[`).
    let outer = common::read(&dir.join("inside-secret.yaml"));
    let b64 = outer
        .lines()
        .find_map(|l| l.trim().strip_prefix("key: "))
        .unwrap();
    let inner = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    assert!(inner.contains("\"mac\": \"ENC["));
    let dec = decrypt(&inner, &key).unwrap();
    same_yaml(&dec.to_yaml(2), "data: value\n");
}

#[test]
fn getsops_mock_identity_parses_and_post_quantum_is_refused_clearly() {
    let v = common::vectors();
    let mock = ids(&v.join("getsops-age-keysource-test"), "mockIdentity.agekey");
    assert_eq!(
        mock[0].recipient().to_string(),
        "age1lzd99uklcjnc0e7d860axevet2cz99ce9pq6tzuzd05l5nr28ams36nvun"
    );

    let flux = v.join("flux-kustomize-controller");
    let err = load_identities_from(&flux.join("age-pq.agekey")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Key);
    assert!(err.to_string().contains("post-quantum"), "{err}");
    assert!(err.to_string().contains("age-pq.agekey: line 3"), "{err}");
    let err = decrypt(
        &common::read(&flux.join("age-pq.sops.yaml")),
        &ids(&flux, "age.agekey"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("post-quantum"), "{err}");
}

#[test]
fn wrong_key_names_the_recipients() {
    let v = common::vectors().join("flux-kustomize-controller");
    let err = decrypt(
        &common::read(&v.join("age.sops.yaml")),
        &ids(&v, "age-global.agekey"),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoIdentity);
    assert!(
        err.to_string()
            .contains("age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29"),
        "{err}"
    );
}

/// Derives tampered variants from the vectors (sops-format.md §20.1).
#[test]
fn tampering_is_reported_with_the_path() {
    let rops = common::vectors().join("rops-sops-references");
    let key = ids(&rops, "rops-mock.agekey");

    // Swap the ciphertexts of two keys: each fails authentication under the other's AAD.
    let text = common::read(&rops.join("age_encrypted_suffix.sops.yaml"));
    let value = |key: &str| {
        text.lines()
            .find_map(|l| {
                l.trim_start()
                    .strip_prefix(&format!("{key}: "))
                    .map(str::to_owned)
            })
            .unwrap()
    };
    let (a, b) = (value("a"), value("b"));
    let swapped = text
        .replacen(&a, "@@A@@", 1)
        .replacen(&b, &a, 1)
        .replacen("@@A@@", &b, 1);
    let err = decrypt(&swapped, &key).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tampered);
    assert_eq!(err.value_path(), Some("a.1_encrypted.a"));
    assert!(
        err.to_string()
            .starts_with("a.1_encrypted.a: authentication failed"),
        "{err}"
    );

    // A value that should be encrypted but is plain.
    let plain = text.replacen(&a, "hello", 1);
    let err = decrypt(&plain, &key).unwrap_err();
    assert_eq!(err.value_path(), Some("a.1_encrypted.a"));

    // Full MAC: changing an unencrypted value breaks the MAC ...
    let text = common::read(&rops.join("age_unencrypted_regex.sops.yaml"));
    let changed = text.replacen("    a: aaa", "    a: aab", 1);
    assert_ne!(changed, text);
    assert_eq!(
        decrypt(&changed, &key).unwrap_err().kind(),
        ErrorKind::MacMismatch
    );
    // ... removing an encrypted value too (every remaining value still authenticates).
    let removed: String = text
        .lines()
        .filter(|l| !l.starts_with("b: ENC["))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        decrypt(&removed, &key).unwrap_err().kind(),
        ErrorKind::MacMismatch
    );

    // mac_only_encrypted: unencrypted values are outside the MAC.
    let text = common::read(&rops.join("age_mac_only_encrypted.sops.yaml"));
    let changed = text.replacen("d_unencrypted: aaa", "d_unencrypted: changed", 1);
    assert_ne!(changed, text);
    decrypt(&changed, &key).unwrap();

    // `lastmodified` with `+00:00` normalises to the same AAD; another instant does not.
    let flux = common::vectors().join("flux-kustomize-controller");
    let text = common::read(&flux.join("age.sops.yaml"));
    let k = ids(&flux, "age.agekey");
    decrypt(
        &text.replace("2024-11-12T13:33:42Z", "2024-11-12T13:33:42+00:00"),
        &k,
    )
    .unwrap();
    let err = decrypt(
        &text.replace("2024-11-12T13:33:42Z", "2024-11-12T13:33:43Z"),
        &k,
    )
    .unwrap_err();
    assert_eq!(err.value_path(), Some("sops.mac"));

    // Removing `version`: readable here, but the CLI would refuse, and filestatus says so.
    let no_version: String = text
        .lines()
        .filter(|l| !l.contains("version:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        decrypt(&no_version, &k)
            .unwrap()
            .warnings()
            .iter()
            .any(|w| w.contains("version"))
    );
    assert!(matches!(
        status(&no_version),
        FileStatus::NotEncrypted { .. }
    ));
}
