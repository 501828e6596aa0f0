//! The repository's own templates, rendered with the AI Gateway enabled (the `public` and
//! `private` test configurations and the every-option fixture of the render tests), pass
//! `verify` against the pinned upstream schemas in `../shared/schemas` (CRD schemas with their
//! CEL rules, the Flux graph, the AI Gateway cross-resource rules).
//!
//! The rendered `*.sops.yaml` files hold the configs' fake values in plaintext here (encryption
//! is the secrets crate's and `cargo xtask configure`'s job), so `verify::sops_plaintext` on
//! them is the one expected finding. A mutated copy of the tree shows the check can fail.

mod common;

use std::path::{Path, PathBuf};

use render::{CloudflareTunnel, Inputs, Rendered};
use schema::Severity;

const AI_DIR: &str = "kubernetes/apps/ai-gateway/";
const EG_RELEASE: &str = "kubernetes/apps/network/envoy-gateway/app/helmrelease.yaml";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Fake inputs for the template functions (not usable keys).
fn fake_inputs() -> Inputs {
    Inputs {
        age_public_key: Some(
            "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq".to_owned(),
        ),
        age_private_key: Some(
            "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSFAKE0".to_owned(),
        ),
        cloudflare_tunnel: Some(CloudflareTunnel {
            account_tag: "fake".into(),
            tunnel_id: "fake".into(),
            tunnel_secret: "fake".into(),
        }),
        deploy_key: Some(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----"
                .to_owned(),
        ),
        push_token: Some("fake-push-token".to_owned()),
        talos_patches: Default::default(),
    }
}

fn render(name: &str, cluster: &str) -> Rendered {
    let nodes = read(".github/tests/nodes.yaml");
    let out = schema::load_str(
        cluster,
        Path::new(&format!("{name}.yaml")),
        &nodes,
        Path::new("nodes.yaml"),
    );
    let config = out
        .config
        .unwrap_or_else(|| panic!("{name}: invalid config: {:?}", out.diagnostics));
    assert!(config.cluster.ai_gateway_enabled, "{name}");
    render::render_templates(
        &repo_root().join("templates"),
        &config.context(),
        &fake_inputs(),
    )
    .unwrap_or_else(|d| {
        panic!(
            "{name}: {}",
            d.iter().map(|d| d.render(None)).collect::<String>()
        )
    })
}

fn cases() -> Vec<(&'static str, Rendered)> {
    let public = read(".github/tests/public.yaml");
    let cut = public
        .find("\n# AI Gateway")
        .expect("public.yaml has an AI section");
    let full =
        public[..=cut].to_owned() + &read("crates/render/tests/fixtures/ai-gateway-full.yaml");
    vec![
        ("public", render("public", &public)),
        (
            "private",
            render("private", &read(".github/tests/private.yaml")),
        ),
        ("full", render("full", &full)),
    ]
}

/// The rendered tree in a temporary directory, removed on drop.
struct TempTree(PathBuf);

impl TempTree {
    fn write(r: &Rendered, name: &str) -> TempTree {
        let dir =
            std::env::temp_dir().join(format!("verify-ai-gateway-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, file) in &r.files {
            let target = dir.join(path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(&target, &file.contents).unwrap();
        }
        TempTree(dir)
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file_of(d: &schema::Diagnostic) -> String {
    d.location
        .as_ref()
        .map(|l| l.file.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default()
}

fn is_ai(file: &str) -> bool {
    file.contains(AI_DIR) || file.ends_with(EG_RELEASE)
}

#[test]
fn rendered_ai_gateway_trees_pass_verify() {
    let schemas = common::schemas();
    for (name, r) in cases() {
        let tmp = TempTree::write(&r, name);
        let report = verify::verify(&tmp.0, schemas, &verify::VerifyConfig::cluster_template());
        let unexpected: Vec<String> = report
            .diagnostics
            .iter()
            .filter(|d| !(d.code == "verify::sops_plaintext" && file_of(d).ends_with(".sops.yaml")))
            .filter(|d| d.severity == Severity::Error || is_ai(&file_of(d)))
            .map(|d| d.render(None))
            .collect();
        assert!(
            unexpected.is_empty(),
            "{name}: verify reports:\n{}",
            unexpected.join("\n")
        );
        // The checks really ran on the AI objects: every AI kind had its schema.
        let s = &report.stats;
        assert!(
            s.schemas_available && s.schema_checked > 50 && s.cel_evaluated > 100,
            "{name}: {s:?}"
        );
        for missing in &s.schema_missing {
            for group in [
                "aigateway.envoyproxy.io",
                "gateway.envoyproxy.io",
                "gateway.networking.k8s.io",
            ] {
                assert!(
                    !missing.starts_with(group),
                    "{name}: no schema for {missing}"
                );
            }
        }
        assert!(
            r.files.keys().any(|p| p.starts_with(AI_DIR)),
            "{name}: no AI files rendered"
        );
    }
}

/// The same check fails when the AI tree regresses to a lesson the plan learned on a cluster:
/// here `type: APIKey` for Azure (lesson 2) and kind/group on AIGatewayRoute backendRefs
/// (lesson 1).
#[test]
fn verify_catches_a_regressed_ai_tree() {
    let schemas = common::schemas();
    let (_, r) = cases().into_iter().next().unwrap();
    for (file, from, to) in [
        (
            "kubernetes/apps/ai-gateway/backends/azure-openai/app/backend.yaml",
            "type: AzureAPIKey\n  azureAPIKey:",
            "type: APIKey\n  apiKey:",
        ),
        (
            "kubernetes/apps/ai-gateway/routes/app/aigatewayroute.yaml",
            "      backendRefs:\n        - name: ",
            "      backendRefs:\n        - kind: AIServiceBackend\n          group: aigateway.envoyproxy.io\n          name: ",
        ),
    ] {
        let mut broken = r.clone();
        let out = broken.files.get_mut(file).unwrap();
        let text = String::from_utf8(out.contents.clone()).unwrap();
        assert!(text.contains(from), "{file}: `{from}` not found");
        out.contents = text.replace(from, to).into_bytes();
        let tmp = TempTree::write(&broken, "broken");
        let report = verify::verify(&tmp.0, schemas, &verify::VerifyConfig::cluster_template());
        let errors: Vec<&schema::Diagnostic> = report
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error && file_of(d).ends_with(file))
            .collect();
        assert!(
            !errors.is_empty(),
            "{file}: the regression `{to}` went unnoticed"
        );
    }
}
