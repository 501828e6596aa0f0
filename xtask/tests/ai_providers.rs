//! Issue 16, "Done when": a configuration with Azure (API key and Entra ID), OpenAI, an in-cluster
//! OpenAI-compatible Service, Anthropic and Bedrock, with one model failing over from Azure to
//! OpenAI, validates, renders, encrypts and verifies with the pinned schemas.
//!
//! The real binary runs `init` and `configure` (with its verify step on `../shared/schemas`) in a
//! scratch repository with throwaway keys; the test then decrypts every provider Secret with the
//! scratch age key and checks the keys the controller reads, and that no credential of the
//! configuration is on disk in plaintext outside `cluster.yaml`. Without `../shared/schemas`
//! (`$CLUSTER_SHARED_DIR`) it is skipped, or fails with `REQUIRE_ORACLES=1`.

#![allow(clippy::print_stderr)]

mod common;

use common::{Scratch, ok, repo, shared_dir, skip_or_fail, snapshot};

const TUNNEL: &str = r#"{"AccountTag":"acc","TunnelSecret":"c2VjcmV0","TunnelID":"00000000-0000-4000-8000-000000000001"}"#;

/// The credentials of `crates/render/tests/fixtures/ai-gateway-providers.yaml`.
const CREDENTIALS: &[&str] = &[
    "fake-azure-api-key",
    "fake-entra-client-secret",
    "sk-fake-openai-key",
    "sk-ant-fake-anthropic-key",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "fake-client-key-app-0001",
];

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn every_provider_validates_renders_encrypts_and_verifies() {
    let schemas = shared_dir().join("schemas");
    if !schemas.is_dir() {
        skip_or_fail(&format!(
            "{} not found: the providers configuration is not verified (set CLUSTER_SHARED_DIR)",
            schemas.display()
        ));
        return;
    }
    let public = read(".github/tests/public.yaml");
    let cut = public
        .find("\n# AI Gateway")
        .expect("public.yaml has an AI section");
    let cluster =
        public[..=cut].to_owned() + &read("crates/render/tests/fixtures/ai-gateway-providers.yaml");

    let dir = Scratch::new("ai-providers");
    let root = dir.path();
    std::fs::write(root.join("cluster.yaml"), &cluster).unwrap();
    std::fs::write(root.join("nodes.yaml"), read(".github/tests/nodes.yaml")).unwrap();
    std::fs::write(root.join("cloudflare-tunnel.json"), TUNNEL).unwrap();
    ok(&["init", "--dir", "."], root);
    let log = ok(&["configure", "--schemas", schemas.to_str().unwrap()], root);
    for step in ["validate", "render", "encrypt", "write", "verify"] {
        assert!(
            log.lines().any(|l| l.starts_with(step)),
            "no {step} line:\n{log}"
        );
    }
    let verify_line = log.lines().find(|l| l.starts_with("verify")).unwrap();
    assert!(verify_line.contains("no errors"), "{log}");

    let tree = snapshot(root);
    let ids = secrets::load_identities_from(&root.join("age.key")).unwrap();
    let secret = |rel: &str| -> String {
        let text = std::str::from_utf8(&tree[rel]).unwrap();
        secrets::decrypt(text, &ids)
            .unwrap_or_else(|e| panic!("{rel} does not decrypt: {e}"))
            .to_yaml(2)
    };
    let base = "kubernetes/apps/ai-gateway/backends";
    // (file, what its plaintext must hold: the key the controller reads with its value)
    let expect = [
        (
            format!("{base}/azure-openai/app/secret.sops.yaml"),
            vec![
                "apiKey: fake-azure-api-key",
                "client-secret: fake-entra-client-secret",
            ],
        ),
        (
            format!("{base}/openai/app/secret.sops.yaml"),
            vec!["apiKey: sk-fake-openai-key"],
        ),
        (
            format!("{base}/anthropic/app/secret.sops.yaml"),
            vec!["apiKey: sk-ant-fake-anthropic-key"],
        ),
        (
            format!("{base}/bedrock/app/secret.sops.yaml"),
            vec![
                "credentials: |",
                "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ],
        ),
    ];
    for (rel, wants) in &expect {
        let plain = secret(rel);
        for want in wants {
            assert!(
                plain.contains(want),
                "{rel} lacks {want:?}:\n(plaintext not shown)"
            );
        }
    }
    // No credential on disk in plaintext, except in the configuration itself.
    for (rel, bytes) in &tree {
        if rel == "cluster.yaml" {
            continue;
        }
        let text = String::from_utf8_lossy(bytes);
        for c in CREDENTIALS {
            assert!(!text.contains(c), "a credential is in plaintext in {rel}");
        }
    }
    eprintln!(
        "providers: {} files, verified with {}",
        tree.len(),
        schemas.display()
    );
}
