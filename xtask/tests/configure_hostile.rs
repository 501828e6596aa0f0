//! `cargo xtask configure` on a repository with hostile content (issue 12): a template
//! override that leaves a secret outside the encrypted keys or adds a recipient, an age.key
//! whose comment names another key, a planted previous ciphertext (alias bomb, or a data key
//! chosen by someone else).

mod common;

use std::path::Path;
use std::process::Output;

use common::{Scratch, copy_dir, repo, xtask};

/// A scratch output with the example's throwaway keys, a first configure done, and a copy of
/// templates/ (so that overrides can be added).
fn example(name: &str) -> (Scratch, std::path::PathBuf) {
    let dir = Scratch::new(name);
    let templates = dir.path().join("templates");
    copy_dir(&repo().join("templates"), &templates);
    let out = run(dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    (dir, templates)
}

fn run(dir: &Path) -> Output {
    run_with(dir, &[])
}

fn run_with(dir: &Path, extra: &[&str]) -> Output {
    let out = dir.join("out");
    let templates = dir.join("templates");
    let mut args = vec![
        "configure",
        "--example",
        "--no-verify",
        "--out",
        out.to_str().unwrap(),
        "--templates",
        templates.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    xtask(&args, &repo())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn override_file(templates: &Path, rel: &str, text: &str) {
    let path = templates.join("overrides").join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const SECRETS_TEMPLATE: &str = "kubernetes/components/sops/cluster-secrets.sops.yaml.j2";
const SECRETS_FILE: &str = "kubernetes/components/sops/cluster-secrets.sops.yaml";

#[test]
fn a_secret_outside_the_encrypted_keys_is_refused_and_nothing_is_written() {
    let (dir, templates) = example("exposed");
    let before = common::snapshot(&dir.path().join("out"));
    override_file(
        &templates,
        SECRETS_TEMPLATE,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cluster-secrets\nstringdata:\n  SECRET_DOMAIN: very-secret-value\n",
    );
    let out = run(dir.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(SECRETS_FILE)
            && err.contains("`stringdata.SECRET_DOMAIN` would be written in plaintext"),
        "{err}"
    );
    assert!(!err.contains("very-secret-value"), "{err}");
    assert_eq!(common::snapshot(&dir.path().join("out")), before);
}

#[test]
fn a_rendered_sops_yaml_with_a_foreign_recipient_is_refused() {
    let (dir, templates) = example("foreign-recipient");
    let before = common::snapshot(&dir.path().join("out"));
    let foreign = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    let original = std::fs::read_to_string(templates.join("config/.sops.yaml.j2")).unwrap();
    let redirected = original.replace(
        "age: #{ age_key('public') | yaml }#",
        &format!("age: #{{ age_key('public') }}#,{foreign}"),
    );
    assert_ne!(redirected, original);
    override_file(&templates, ".sops.yaml.j2", &redirected);
    let out = run(dir.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(".sops.yaml (rendered): creation rule 1")
            && err.contains(&format!("encrypts to {foreign}")),
        "{err}"
    );
    assert_eq!(common::snapshot(&dir.path().join("out")), before);
}

#[test]
fn an_age_key_whose_comment_names_another_key_is_refused() {
    let (dir, _) = example("age-comment");
    let key_path = dir.path().join("out/age.key");
    let text = std::fs::read_to_string(&key_path).unwrap();
    let own = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_owned();
    let foreign = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    std::fs::write(&key_path, text.replace(&own, foreign)).unwrap();
    let before = common::snapshot(&dir.path().join("out"));
    let out = run(dir.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(foreign) && err.contains(&own), "{err}");
    assert!(!err.contains("AGE-SECRET-KEY-"), "{err}");
    assert_eq!(common::snapshot(&dir.path().join("out")), before);
}

#[test]
fn an_alias_bomb_as_the_previous_secret_is_refused_without_exhausting_memory() {
    let (dir, _) = example("alias-bomb");
    let mut bomb = format!("stringData:\n  a: &s {}\n  l:\n", "x".repeat(500_000));
    while bomb.len() < 800_000 {
        bomb.push_str("    - *s\n");
    }
    std::fs::write(dir.path().join("out").join(SECRETS_FILE), &bomb).unwrap();
    let out = run(dir.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("expands to more than"), "{err}");
}

/// Someone commits a file encrypted to the user's recipient under a data key they know; the
/// next real secret must not be sealed under it.
#[test]
fn a_planted_previous_secret_does_not_choose_the_data_key() {
    let (dir, _) = example("planted-key");
    let out_dir = dir.path().join("out");
    let file = out_dir.join(SECRETS_FILE);
    let sealed_before = std::fs::read_to_string(&file).unwrap();
    let data_key_block = |text: &str| -> String {
        text.lines()
            .skip_while(|l| !l.contains("BEGIN AGE ENCRYPTED FILE"))
            .take_while(|l| !l.contains("END AGE ENCRYPTED FILE"))
            .collect()
    };
    // The "attacker's" file: same recipient, a data key of their own, another value.
    let planted = {
        let plain = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cluster-secrets\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\nstringData:\n  SECRET_DOMAIN: placeholder.example\n";
        let p = out_dir.join("kubernetes/planted.sops.yaml");
        std::fs::write(&p, plain).unwrap();
        let o = xtask(
            &[
                "secrets",
                "encrypt",
                "kubernetes/planted.sops.yaml",
                "--age-key-file",
                "age.key",
            ],
            &out_dir,
        );
        std::fs::remove_file(&p).unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    std::fs::write(&file, &planted).unwrap();
    // The attacker controls the repository, render manifest included: --force stands for that.
    let out = run_with(dir.path(), &["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sealed_after = std::fs::read_to_string(&file).unwrap();
    assert_ne!(sealed_after, planted);
    assert_ne!(data_key_block(&sealed_after), data_key_block(&planted));
    assert_ne!(
        data_key_block(&sealed_after),
        data_key_block(&sealed_before)
    );
}
