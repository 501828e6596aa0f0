//! Encrypt → decrypt round trips, the emitted layout, and the no-churn contract, without any
//! external tool. Keys are generated per test.

mod common;

use proptest::prelude::*;
use secrets::{
    Clock, ErrorKind, FileStatus, Identity, KeyFile, Previous, SopsConfig, decrypt, encrypt_at,
    format_yaml, load_identities_from, status, write_new_key_file,
};

fn config(recipients: &[&Identity], indent: usize) -> SopsConfig {
    let age: Vec<String> = recipients
        .iter()
        .map(|i| i.recipient().to_string())
        .collect();
    let age = age.join(",");
    SopsConfig::parse(&format!(
        "---\ncreation_rules:\n  - path_regex: talos/.*\\.sops\\.ya?ml\n    mac_only_encrypted: true\n    age: \"{age}\"\n  - path_regex: (bootstrap|kubernetes)/.*\\.sops\\.ya?ml\n    encrypted_regex: \"^(data|stringData)$\"\n    mac_only_encrypted: true\n    age: \"{age}\"\nstores:\n  yaml:\n    indent: {indent}\n"
    ))
    .unwrap()
}

fn fixture(name: &str) -> String {
    common::read(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
}

const T0: Clock = Clock::Fixed(1_767_225_600); // 2026-01-01T00:00:00Z
const T1: Clock = Clock::Fixed(1_767_225_661);

#[test]
fn fixtures_round_trip_and_have_the_sops_layout() {
    let a = Identity::generate().unwrap();
    let b = Identity::generate().unwrap();
    for indent in [2, 4] {
        let cfg = config(&[&a, &b], indent);
        for (name, path) in [
            (
                "cluster-secrets.yaml",
                "kubernetes/components/sops/cluster-secrets.sops.yaml",
            ),
            ("edge.yaml", "kubernetes/apps/x/edge.sops.yaml"),
            ("multi-doc.yaml", "bootstrap/multi.sops.yaml"),
            ("talos.yaml", "talos/talsecret.sops.yaml"),
        ] {
            let plain = fixture(name);
            let file =
                encrypt_at(path, &plain, &cfg, None, T0).unwrap_or_else(|e| panic!("{name}: {e}"));
            let pad = " ".repeat(indent);
            assert!(file.contains("\nsops:\n"), "{name}");
            assert!(
                file.contains(&format!("\n{pad}lastmodified: \"2026-01-01T00:00:00Z\"\n")),
                "{name}:\n{file}"
            );
            assert!(
                file.contains(&format!("\n{pad}mac: ENC[AES256_GCM,data:")),
                "{name}"
            );
            assert!(
                file.contains(&format!(
                    "\n{pad}mac_only_encrypted: true\n{pad}version: 3.10.2\n"
                )),
                "{name}"
            );
            assert_eq!(
                file.matches("-----BEGIN AGE ENCRYPTED FILE-----").count(),
                2 * plain.matches("\nkind:").count().max(1),
                "{name}"
            );
            assert_eq!(status(&file), FileStatus::Encrypted, "{name}");
            for identity in [&a, &b] {
                let dec = decrypt(&file, std::slice::from_ref(identity))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    dec.to_yaml(indent),
                    format_yaml(&plain, indent).unwrap(),
                    "{name}"
                );
                assert!(dec.warnings().is_empty(), "{name}: {:?}", dec.warnings());
            }
        }
    }
}

#[test]
fn edge_fixture_encrypts_what_sops_would() {
    let a = Identity::generate().unwrap();
    let file = encrypt_at(
        "kubernetes/edge.sops.yaml",
        &fixture("edge.yaml"),
        &config(&[&a], 2),
        None,
        T0,
    )
    .unwrap();
    // Outside `data`/`stringData`: plain, comments too.
    assert!(file.starts_with("# Edge cases for the writer"), "{file}");
    assert!(
        file.contains("\n    # an unencrypted comment\n    note: 'plain: value'\n"),
        "{file}"
    );
    // Inside: comments and values encrypted with their types; "" and null untouched.
    assert!(file.contains("\n  #ENC[AES256_GCM,data:"), "{file}");
    assert!(file.contains(",type:comment]\n"));
    assert!(
        file.contains("\n  empty: \"\"\n  nothing: null\n  tilde: null\n"),
        "{file}"
    );
    for (key, kind) in [
        ("count", "int"),
        ("enabled", "bool"),
        ("ratio", "float"),
        ("big", "float"),
        ("quoted", "str"),
        ("multi", "str"),
    ] {
        let line = file
            .lines()
            .find(|l| l.starts_with(&format!("  {key}: ")))
            .unwrap();
        assert!(
            line.starts_with(&format!("  {key}: ENC[AES256_GCM,data:"))
                && line.ends_with(&format!(",type:{kind}]")),
            "{line}"
        );
    }
    assert!(file.contains("\n    - \"\"\n    - null\n"), "{file}");
    assert!(
        file.contains("\n    empty_map: {}\n    empty_list: []\n"),
        "{file}"
    );
    assert!(!file.contains("hello world") && !file.contains("grüße"));
}

#[test]
fn unchanged_plaintext_gives_the_previous_file_byte_for_byte() {
    let a = Identity::generate().unwrap();
    let cfg = config(&[&a], 2);
    let plain = fixture("edge.yaml");
    let first = encrypt_at("kubernetes/edge.sops.yaml", &plain, &cfg, None, T0).unwrap();
    let ids = [a.clone()];
    let prev = Previous {
        text: &first,
        identities: &ids,
    };
    let again = encrypt_at("kubernetes/edge.sops.yaml", &plain, &cfg, Some(prev), T1).unwrap();
    assert_eq!(again, first);
    // Different formatting of the same data is still "unchanged".
    let reformatted = format_yaml(&plain, 4).unwrap();
    assert_eq!(
        encrypt_at(
            "kubernetes/edge.sops.yaml",
            &reformatted,
            &cfg,
            Some(prev),
            T1
        )
        .unwrap(),
        first
    );
}

/// A change re-encrypts the whole file: new data key (every `enc` block differs), new IVs
/// (every value differs), never the previous file's.
#[test]
fn a_changed_value_re_encrypts_the_whole_file_under_a_new_data_key() {
    let a = Identity::generate().unwrap();
    let cfg = config(&[&a], 2);
    let plain = fixture("edge.yaml");
    let first = encrypt_at("kubernetes/edge.sops.yaml", &plain, &cfg, None, T0).unwrap();
    let changed_plain = plain.replace("text: hello world", "text: hello there");
    assert_ne!(changed_plain, plain);
    let ids = [a.clone()];
    let second = encrypt_at(
        "kubernetes/edge.sops.yaml",
        &changed_plain,
        &cfg,
        Some(Previous {
            text: &first,
            identities: &ids,
        }),
        T1,
    )
    .unwrap();
    let values = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("ENC[AES256_GCM"))
            .map(str::to_owned)
            .collect()
    };
    let (v1, v2) = (values(&first), values(&second));
    assert_eq!(v1.len(), v2.len());
    assert!(
        v1.iter().all(|l| !v2.contains(l)),
        "a value kept its ciphertext"
    );
    let armor = |text: &str| -> String {
        text.lines()
            .filter(|l| !l.contains(':') && !l.contains("-----"))
            .collect()
    };
    assert_ne!(armor(&first), armor(&second), "the data key was reused");
    let dec = decrypt(&second, &ids).unwrap();
    assert_eq!(dec.to_yaml(2), format_yaml(&changed_plain, 2).unwrap());
}

#[test]
fn new_recipients_rekey_and_tampered_previous_is_an_error() {
    let a = Identity::generate().unwrap();
    let b = Identity::generate().unwrap();
    let plain = fixture("cluster-secrets.yaml");
    let path = "kubernetes/cluster-secrets.sops.yaml";
    let first = encrypt_at(path, &plain, &config(&[&a], 2), None, T0).unwrap();
    let ids = [a.clone()];
    let prev = Previous {
        text: &first,
        identities: &ids,
    };
    let rekeyed = encrypt_at(path, &plain, &config(&[&a, &b], 2), Some(prev), T1).unwrap();
    assert_ne!(rekeyed, first);
    decrypt(&rekeyed, std::slice::from_ref(&b)).unwrap();
    // A previous file nobody can open is replaced, not an error.
    let other = [Identity::generate().unwrap()];
    let fresh = encrypt_at(
        path,
        &plain,
        &config(&[&a], 2),
        Some(Previous {
            text: &first,
            identities: &other,
        }),
        T1,
    )
    .unwrap();
    assert_ne!(fresh, first);
    // A tampered previous file is an error that names it.
    let line = first.lines().find(|l| l.contains("SECRET_DOMAIN")).unwrap();
    let tampered = first.replace(line, &line.replacen("data:", "data:AA", 1));
    let err = encrypt_at(
        path,
        &plain,
        &config(&[&a], 2),
        Some(Previous {
            text: &tampered,
            identities: &ids,
        }),
        T1,
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tampered);
    assert!(
        err.to_string()
            .contains("previous version of kubernetes/cluster-secrets.sops.yaml"),
        "{err}"
    );
    assert!(
        err.to_string().contains("stringData.SECRET_DOMAIN"),
        "{err}"
    );
}

#[test]
fn refuses_already_encrypted_and_unmatched_paths() {
    let a = Identity::generate().unwrap();
    let cfg = config(&[&a], 2);
    let file = encrypt_at(
        "kubernetes/x.sops.yaml",
        &fixture("cluster-secrets.yaml"),
        &cfg,
        None,
        T0,
    )
    .unwrap();
    assert_eq!(
        encrypt_at("kubernetes/x.sops.yaml", &file, &cfg, None, T0)
            .unwrap_err()
            .kind(),
        ErrorKind::AlreadyEncrypted
    );
    assert_eq!(
        encrypt_at("docs/x.yaml", "a: 1\n", &cfg, None, T0)
            .unwrap_err()
            .kind(),
        ErrorKind::Config
    );
    assert_eq!(
        encrypt_at("kubernetes/x.sops.yaml", "- a\n", &cfg, None, T0)
            .unwrap_err()
            .kind(),
        ErrorKind::Yaml
    );
}

#[test]
fn key_files_are_private_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("age.key");
    let id = Identity::generate().unwrap();
    let kf = KeyFile::new(&id, "2026-01-01T00:00:00Z");
    write_new_key_file(&path, &kf).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# created: 2026-01-01T00:00:00Z");
    assert_eq!(lines[1], format!("# public key: {}", id.recipient()));
    assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));
    assert_eq!(
        load_identities_from(&path).unwrap()[0].recipient(),
        id.recipient()
    );
    let other = KeyFile::new(&Identity::generate().unwrap(), "x");
    assert!(
        write_new_key_file(&path, &other)
            .unwrap_err()
            .to_string()
            .contains("refusing to overwrite")
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn generated_secrets_round_trip(json in common::secret_json()) {
        let a = Identity::generate().unwrap();
        let cfg = config(&[&a], 2);
        let file = encrypt_at("kubernetes/gen.sops.yaml", &json, &cfg, None, T0).unwrap();
        let dec = decrypt(&file, std::slice::from_ref(&a)).unwrap();
        prop_assert_eq!(dec.to_yaml(2), format_yaml(&json, 2).unwrap());
        // Our own output re-parses to the same tree (the emitter's quoting is sound).
        prop_assert_eq!(format_yaml(&dec.to_yaml(2), 2).unwrap(), dec.to_yaml(2));
    }
}
