//! Repository files are untrusted input: a sops file, `.sops.yaml` or a previous ciphertext may
//! come from a pull request. These tests are the attacks of issue 12 against the library.

use std::os::unix::fs::symlink;
use std::path::Path;

use secrets::{Identity, SopsConfig, decrypt, encrypt, load_identities_from, read_file};

fn config_for(id: &Identity) -> SopsConfig {
    SopsConfig::parse(&format!(
        "creation_rules:\n  - path_regex: .*\\.sops\\.ya?ml$\n    encrypted_regex: ^(data|stringData)$\n    mac_only_encrypted: true\n    age: {}\n",
        id.recipient()
    ))
    .unwrap()
}

/// The bomb: an ~800 KB file whose one 500 KB string is aliased many times. It used to
/// be expanded in full (100,000 aliases = 50 GB, the process was killed); it is now refused
/// by the expanded-bytes budget while it is parsed, both as a sops file and as a previous
/// version next to a rendered secret.
#[test]
fn string_alias_bomb_is_refused_not_expanded() {
    let id = Identity::generate().unwrap();
    let mut bomb = format!("stringData:\n  a: &s {}\n  l:\n", "x".repeat(500_000));
    while bomb.len() < 800_000 {
        bomb.push_str("    - *s\n");
    }
    let Err(err) = decrypt(&bomb, std::slice::from_ref(&id)) else {
        panic!("the bomb decrypted")
    };
    assert!(err.to_string().contains("expands to more than"), "{err}");
    let plain = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  k: v\n";
    let ids = [id.clone()];
    let previous = secrets::Previous {
        text: &bomb,
        identities: &ids,
    };
    let Err(err) = encrypt("s.sops.yaml", plain, &config_for(&id), Some(previous)) else {
        panic!("the bomb was accepted as a previous version")
    };
    assert!(err.to_string().contains("expands to more than"), "{err}");
}

#[test]
fn a_sops_file_larger_than_the_cap_is_refused_before_parsing() {
    let big = format!("a: {}\n", "x".repeat(secrets::MAX_FILE_BYTES as usize));
    let err = decrypt(&big, &[]).unwrap_err();
    assert!(err.to_string().contains("bytes allowed"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.sops.yaml");
    std::fs::write(&path, &big).unwrap();
    let err = read_file(&path).unwrap_err();
    assert!(
        err.to_string().contains("larger than the 8388608 bytes"),
        "{err}"
    );
}

/// `read_file` is how callers read sops files: a symlink (to `age.key`), a device and a FIFO are
/// refused without blocking; a key file given on purpose may be a symlink, but not a device.
#[test]
fn reading_refuses_symlinks_devices_and_fifos() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("age.key");
    let id = Identity::generate().unwrap();
    std::fs::write(&key, format!("{}\n", id.to_secret_string().as_str())).unwrap();
    let link = dir.path().join("x.sops.yaml");
    symlink(&key, &link).unwrap();
    let err = read_file(&link).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(!err.to_string().contains("AGE-SECRET-KEY"), "{err}");

    let err = read_file(Path::new("/dev/zero")).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let err = load_identities_from(Path::new("/dev/zero")).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");

    let fifo = dir.path().join("fifo.sops.yaml");
    if std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        let err = read_file(&fifo).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        let err = load_identities_from(&fifo).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }

    // A key file named on purpose may be a symlink (SOPS_AGE_KEY_FILE=~/keys/current).
    let key_link = dir.path().join("current.key");
    symlink(&key, &key_link).unwrap();
    assert_eq!(load_identities_from(&key_link).unwrap().len(), 1);
    // A huge "key file" is refused before it is read in full.
    let huge = dir.path().join("huge.key");
    std::fs::write(&huge, vec![b'#'; 1 << 20]).unwrap();
    let err = load_identities_from(&huge).unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");

    // `.sops.yaml` is a repository file: never through a symlink.
    let real = dir.path().join("real.yaml");
    std::fs::write(&real, "creation_rules: []\n").unwrap();
    symlink(&real, dir.path().join(".sops.yaml")).unwrap();
    let err = SopsConfig::load(&dir.path().join(".sops.yaml")).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
}

/// The `- recipient:` block of `recipient` in a file's `sops.age` list (indent 2), and the file
/// without it. The MAC does not cover the recipients, so the file still verifies.
fn split_age_entry(file: &str, recipient: &str) -> (String, String) {
    let start = file
        .find(&format!("    - recipient: {recipient}\n"))
        .unwrap();
    let rest = &file[start + 1..];
    let end = start
        + 1
        + rest
            .find("\n    - recipient: ")
            .or_else(|| rest.find("\n  lastmodified:"))
            .unwrap()
        + 1;
    let block = file[start..end].to_owned();
    (block, format!("{}{}", &file[..start], &file[end..]))
}

/// The data-key injection of issue 12: an attacker encrypts to the victim's public recipient
/// (and to their own, which they then remove, keeping its stanza), commits the file, and waits
/// for the victim's next real secret. It used to be sealed under the attacker's data key, so
/// putting the stanza back opened it; now a change always gets a data key made by the tool.
#[test]
fn a_planted_previous_file_never_lends_its_data_key_to_new_plaintext() {
    let victim = Identity::generate().unwrap();
    let attacker = Identity::generate().unwrap();
    let both = SopsConfig::parse(&format!(
        "creation_rules:\n  - path_regex: .*\\.sops\\.ya?ml$\n    encrypted_regex: ^(data|stringData)$\n    mac_only_encrypted: true\n    age: {},{}\nstores:\n  yaml:\n    indent: 2\n",
        victim.recipient(),
        attacker.recipient()
    ))
    .unwrap();
    let path = "kubernetes/s.sops.yaml";
    let head = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: ";
    let planted = encrypt(path, &format!("{head}placeholder\n"), &both, None).unwrap();
    let attacker_recipient = attacker.recipient().to_string();
    let (stanza, planted) = split_age_entry(&planted, &attacker_recipient);
    // To the victim the planted file looks like their own: it opens and verifies.
    let victims = [victim.clone()];
    decrypt(&planted, &victims).unwrap();

    let mine = SopsConfig::parse(&format!(
        "creation_rules:\n  - path_regex: .*\\.sops\\.ya?ml$\n    encrypted_regex: ^(data|stringData)$\n    mac_only_encrypted: true\n    age: {}\nstores:\n  yaml:\n    indent: 2\n",
        victim.recipient()
    ))
    .unwrap();
    let real = format!("{head}the-real-secret\n");
    let sealed = encrypt(
        path,
        &real,
        &mine,
        Some(secrets::Previous {
            text: &planted,
            identities: &victims,
        }),
    )
    .unwrap();
    assert!(!sealed.contains(&attacker_recipient));
    // The attacker puts their stanza back and tries their key.
    let with_stanza = sealed.replacen("  age:\n", &format!("  age:\n{stanza}"), 1);
    assert_ne!(with_stanza, sealed);
    match decrypt(&with_stanza, std::slice::from_ref(&attacker)) {
        Ok(dec) => panic!(
            "the attacker opened the new secret: {}",
            dec.to_yaml(2).contains("the-real-secret")
        ),
        Err(e) => assert_eq!(e.kind(), secrets::ErrorKind::Tampered, "{e}"),
    }
    assert!(
        decrypt(&sealed, &victims)
            .unwrap()
            .to_yaml(2)
            .contains("the-real-secret")
    );

    // A planted file that already says exactly what we would write is kept byte for byte: it
    // tells its author nothing they did not know, and an unchanged secret never churns.
    let same = encrypt(
        path,
        &format!("{head}placeholder\n"),
        &mine,
        Some(secrets::Previous {
            text: &planted,
            identities: &victims,
        }),
    )
    .unwrap();
    assert_eq!(same, planted);
}

/// Flux decrypts every document with its own `sops` block; this crate reads the first. A
/// previous file whose later blocks differ is not kept, even when its values match.
#[test]
fn a_previous_file_whose_documents_disagree_on_metadata_is_not_kept() {
    let id = Identity::generate().unwrap();
    let cfg = config_for(&id);
    let plain = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\nstringData:\n  k: one\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: b\nstringData:\n  k: two\n";
    let first = encrypt("s.sops.yaml", plain, &cfg, None).unwrap();
    let ids = [id.clone()];
    let prev = |text: &str| {
        encrypt(
            "s.sops.yaml",
            plain,
            &cfg,
            Some(secrets::Previous {
                text,
                identities: &ids,
            }),
        )
        .unwrap()
    };
    assert_eq!(prev(&first), first);
    let (head, tail) = first.split_once("\n---\n").unwrap();
    let stamp = tail
        .lines()
        .find(|l| l.trim_start().starts_with("lastmodified:"))
        .unwrap();
    let odd = format!(
        "{head}\n---\n{}",
        tail.replacen(stamp, "    lastmodified: \"2001-01-01T00:00:00Z\"", 1)
    );
    assert_ne!(odd, first);
    decrypt(&odd, &ids).unwrap();
    let sealed = prev(&odd);
    assert_ne!(sealed, odd);
    let (h, t) = sealed.split_once("\n---\n").unwrap();
    let block = |s: &str| s[s.find("sops:").unwrap()..].to_owned();
    assert_eq!(block(h).trim_end(), block(t).trim_end());
}
