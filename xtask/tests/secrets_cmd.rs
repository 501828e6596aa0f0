//! `cargo xtask secrets …` on hostile repository files, through the real binary: planted
//! symlinks, devices, FIFOs, foreign recipients, a closed stdout.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Scratch;

const PLAIN: &str =
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: hunter2\n";

/// A directory with `age.key` and a `.sops.yaml` encrypting `*.sops.yaml` to that key.
fn repo_with_key(name: &str) -> (Scratch, String) {
    let dir = Scratch::new(name);
    let out = run(&["secrets", "keygen", "--output", "age.key"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let recipient = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    std::fs::write(
        dir.path().join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: .*\\.sops\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: {recipient}\n"
        ),
    )
    .unwrap();
    (dir, recipient)
}

/// Runs xtask with `SOPS_AGE_KEY_FILE=age.key`, killing it after 60 s (a hang is a failure).
fn run(args: &[&str], cwd: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(cwd)
        .env("SOPS_AGE_KEY_FILE", cwd.join("age.key"))
        .env_remove("SOPS_AGE_KEY")
        .env("XDG_CONFIG_HOME", cwd.join("no-config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("xtask {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn encrypt_in_place_never_writes_through_a_planted_symlink() {
    let (dir, _) = repo_with_key("in-place-symlink");
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    std::fs::write(dir.path().join("s.sops.yaml"), PLAIN).unwrap();
    // The temporary name the old code used, planted as a symlink to a file outside.
    symlink(&victim, dir.path().join(".s.sops.yaml.xtask-tmp")).unwrap();
    let out = run(
        &["secrets", "encrypt", "--in-place", "s.sops.yaml"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    let written = std::fs::read_to_string(dir.path().join("s.sops.yaml")).unwrap();
    assert!(written.contains("password: ENC[AES256_GCM"), "{written}");
    assert!(!written.contains("hunter2"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("s.sops.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // No temporary file is left behind (the planted symlink is not ours and stays).
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");

    // The target itself as a symlink is refused (it is read without following it).
    symlink(&victim, dir.path().join("t.sops.yaml")).unwrap();
    let out = run(
        &["secrets", "encrypt", "--in-place", "t.sops.yaml"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("symlink"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

#[test]
fn decrypt_and_encrypt_refuse_symlinks_devices_and_fifos_without_hanging() {
    let (dir, _) = repo_with_key("hostile-inputs");
    let key_text = std::fs::read_to_string(dir.path().join("age.key")).unwrap();
    let secret_line = key_text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    symlink(dir.path().join("age.key"), dir.path().join("k.sops.yaml")).unwrap();
    let fifo = dir.path().join("f.sops.yaml");
    let have_fifo = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    let mut inputs = vec!["k.sops.yaml", "/dev/zero"];
    if have_fifo {
        inputs.push("f.sops.yaml");
    }
    for input in inputs {
        for command in ["decrypt", "encrypt", "status"] {
            let out = run(&["secrets", command, input], dir.path());
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{command} {input}: {err}");
            assert!(
                err.contains("symlink") || err.contains("not a regular file"),
                "{command} {input}: {err}"
            );
            assert!(
                !err.contains(secret_line)
                    && !String::from_utf8_lossy(&out.stdout).contains(secret_line)
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

/// Plaintext goes to stdout through the non-panicking writer: a reader that stops early
/// (`| head -1`) is not an error.
#[test]
fn decrypt_to_a_closed_stdout_is_quiet() {
    let (dir, _) = repo_with_key("closed-stdout");
    let mut big = String::from(PLAIN);
    for i in 0..20_000 {
        big.push_str(&format!("  key{i}: some value number {i}\n"));
    }
    std::fs::write(dir.path().join("b.sops.yaml"), &big).unwrap();
    let out = run(
        &["secrets", "encrypt", "--in-place", "b.sops.yaml"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["secrets", "decrypt", "b.sops.yaml"])
        .current_dir(dir.path())
        .env("SOPS_AGE_KEY_FILE", dir.path().join("age.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end at once: the plaintext (~700 KB) cannot fit in a pipe buffer.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
}

#[test]
fn encrypt_names_recipients_that_are_none_of_the_users_keys() {
    let (dir, mine) = repo_with_key("foreign-recipient");
    let foreign = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    std::fs::write(
        dir.path().join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: .*\\.sops\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: {mine},{foreign}\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("s.sops.yaml"), PLAIN).unwrap();
    let out = run(&["secrets", "encrypt", "s.sops.yaml"], dir.path());
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("warning: s.sops.yaml: .sops.yaml encrypts it to {foreign}, which is none of your age identities")),
        "{err}"
    );
    assert!(!err.contains(&mine), "{err}");
}

#[test]
fn keygen_over_an_existing_key_refuses_and_names_the_os_error_once() {
    let (dir, _) = repo_with_key("keygen-twice");
    let before = std::fs::read(dir.path().join("age.key")).unwrap();
    let out = run(&["secrets", "keygen", "--output", "age.key"], dir.path());
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(err.matches("os error 17").count(), 1, "{err}");
    assert_eq!(std::fs::read(dir.path().join("age.key")).unwrap(), before);
}
