//! Encrypting 500 Kubernetes Secrets (the size of a large cluster-template repository), fresh
//! and with the previous ciphertext (the no-churn path `configure` takes on every run).
//! Compare with the sops CLI on the same files: `cargo run --release -p secrets --example sops_cli_timing`.

use criterion::{Criterion, criterion_group, criterion_main};
use secrets::{Clock, Identity, Previous, SopsConfig, encrypt_at};

fn secrets_500() -> Vec<String> {
    (0..500)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-{i}\n  namespace: apps\nstringData:\n  username: user-{i}\n  password: p4ssw0rd-{i}-abcdefghijklmnopqrstuvwxyz\n  api_key: sk-{i:032}\n  url: https://service-{i}.example.com/api\n"
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let id = Identity::generate().unwrap();
    let config = SopsConfig::parse(&format!(
        "creation_rules:\n  - path_regex: kubernetes/.*\\.sops\\.ya?ml\n    encrypted_regex: ^(data|stringData)$\n    mac_only_encrypted: true\n    age: {}\nstores:\n  yaml:\n    indent: 2\n",
        id.recipient()
    ))
    .unwrap();
    let plain = secrets_500();
    let mut group = c.benchmark_group("encrypt_500_secrets");
    group.sample_size(10);
    group.bench_function("fresh", |b| {
        b.iter(|| {
            for p in &plain {
                encrypt_at(
                    "kubernetes/apps/s.sops.yaml",
                    p,
                    &config,
                    None,
                    Clock::Fixed(0),
                )
                .unwrap();
            }
        })
    });
    let ids = [id.clone()];
    let previous: Vec<String> = plain
        .iter()
        .map(|p| {
            encrypt_at(
                "kubernetes/apps/s.sops.yaml",
                p,
                &config,
                None,
                Clock::Fixed(0),
            )
            .unwrap()
        })
        .collect();
    group.bench_function("unchanged_with_previous", |b| {
        b.iter(|| {
            for (p, prev) in plain.iter().zip(&previous) {
                let out = encrypt_at(
                    "kubernetes/apps/s.sops.yaml",
                    p,
                    &config,
                    Some(Previous {
                        text: prev,
                        identities: &ids,
                    }),
                    Clock::Fixed(1),
                )
                .unwrap();
                assert_eq!(out.len(), prev.len());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
