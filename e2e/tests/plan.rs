//! The plan and the gateway view, from the hand-written fixture tree (the lead switches these
//! tests to the real `cargo xtask configure` output once the templates land).

use std::path::{Path, PathBuf};

use e2e::gateway::{CostType, GatewayView, ToolSelector};
use e2e::plan::{self, Action, E2eConfig, Layout, MockSpec, TrafficSpec};
use e2e::rendered::Tree;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture() -> PathBuf {
    crate_dir().join("tests/fixtures/rendered")
}

fn layout(rendered: &Path) -> Layout {
    Layout {
        workspace: PathBuf::from("/ws"),
        rendered: rendered.to_path_buf(),
        scratch: PathBuf::from("/scratch"),
        age_key: rendered.join("age.key"),
    }
}

fn config() -> E2eConfig {
    E2eConfig::load(&crate_dir().join("cluster.yaml")).unwrap()
}

#[test]
fn gateway_view_from_fixture() {
    let tree = Tree::load(&fixture()).unwrap();
    let view = GatewayView::from_tree(&tree).unwrap();
    assert_eq!(view.namespace, "envoy-ai-gateway-system");
    assert_eq!(
        view.gateway,
        (
            "envoy-ai-gateway-system".to_owned(),
            "ai-gateway".to_owned()
        )
    );
    let hosts: Vec<(&str, &str, &str)> = view
        .azure
        .iter()
        .map(|b| {
            (
                b.name.as_str(),
                b.host.hostname.as_str(),
                b.api_version.as_str(),
            )
        })
        .collect();
    assert_eq!(
        hosts,
        vec![
            (
                "azure-e2e-primary",
                "e2e-primary.openai.azure.com",
                "2025-01-01-preview"
            ),
            (
                "azure-e2e-secondary",
                "e2e-secondary.openai.azure.com",
                "2025-01-01-preview"
            ),
        ]
    );
    let models: Vec<&str> = view.models.keys().map(String::as_str).collect();
    assert_eq!(models, vec!["gpt-35-turbo", "gpt-4", "gpt-4o"]);
    let failover: Vec<&str> = view.failover_models().iter().map(|(m, _)| *m).collect();
    assert_eq!(failover, vec!["gpt-4o"]);
    assert_eq!(view.mcp.len(), 1);
    assert_eq!(view.mcp[0].path, "/mcp");
    assert_eq!(view.mcp[0].backends[0].path, "/mcp/readonly");
    assert_eq!(
        view.mcp[0].backends[0].selector,
        ToolSelector::IncludeRegex(vec![".*issues?.*".into()])
    );
    assert_eq!(
        view.mcp[0].backends[0].api_key_header.as_deref(),
        Some("Authorization")
    );
    assert_eq!(view.budget.len(), 1);
    assert_eq!(
        (
            view.budget[0].limit,
            view.budget[0].cost,
            view.budget[0].header.as_str()
        ),
        (1000, CostType::TotalToken, "x-user-id")
    );
}

#[test]
fn plan_follows_the_rendered_files() {
    let tree = Tree::load(&fixture()).unwrap();
    let plan = plan::build(&layout(&fixture()), &tree, &config()).unwrap();
    let text = plan.to_string();

    // Envoy Gateway: chart, version and values file come from the rendered HelmRelease/OCIRepository.
    assert!(
        text.contains("helm upgrade --install envoy-gateway oci://mirror.gcr.io/envoyproxy/gateway-helm --version v1.6.7 --namespace network"),
        "{text}"
    );
    // Waits follow dependsOn: envoy-gateway (network) before the AI Gateway controller.
    let order: Vec<String> = plan
        .kustomizations
        .iter()
        .map(|ks| format!("{}/{}", ks.namespace, ks.name))
        .collect();
    let pos = |name: &str| order.iter().position(|o| o == name).unwrap();
    assert!(pos("network/envoy-gateway") < pos("envoy-ai-gateway-system/ai-gateway-controller"));
    assert!(
        pos("envoy-ai-gateway-system/ai-gateway-crds")
            < pos("envoy-ai-gateway-system/ai-gateway-controller")
    );
    assert!(
        pos("envoy-ai-gateway-system/ai-gateway-azure-openai")
            < pos("envoy-ai-gateway-system/ai-gateway-routes")
    );
    assert_eq!(order.len(), 7);

    // One mock per rendered upstream host, with the key from e2e/cluster.yaml.
    let mocks: Vec<&MockSpec> = plan
        .steps
        .iter()
        .flat_map(|s| &s.actions)
        .filter_map(|a| {
            if let Action::StartMock(m) = a {
                Some(m)
            } else {
                None
            }
        })
        .collect();
    let hosts: Vec<&str> = mocks.iter().map(|m| m.hostname()).collect();
    assert_eq!(
        hosts,
        vec![
            "e2e-primary.openai.azure.com",
            "e2e-secondary.openai.azure.com",
            "mcp.e2e.test",
            "oci.e2e.test"
        ]
    );
    assert!(
        matches!(mocks[1], MockSpec::Azure { api_key, .. } if api_key == "fake-api-key-secondary")
    );
    assert!(
        matches!(mocks[2], MockSpec::Mcp { path, api_key: Some(key), .. } if path == "/mcp/readonly" && key == "fake-mcp-token")
    );

    // cert-manager CRDs because the EG app renders a Certificate; no Prometheus CRDs (no PodMonitor here).
    assert!(text.contains("cert-manager.crds.yaml"), "{text}");
    assert!(!text.contains("stripped-down-crds"), "{text}");

    // Root Kustomizations for the two namespace directories, children re-pointed at the OCI source,
    // BackendTLSPolicies patched to the test CA.
    let roots: Vec<&serde_json::Value> = plan
        .steps
        .iter()
        .flat_map(|s| &s.actions)
        .filter_map(|a| match a {
            Action::Apply { object, .. } if object["kind"] == "Kustomization" => Some(object),
            _ => None,
        })
        .collect();
    let paths: Vec<&str> = roots
        .iter()
        .map(|r| r["spec"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        vec!["./kubernetes/apps/ai-gateway", "./kubernetes/apps/network"]
    );
    let child_patch = roots[0]["spec"]["patches"][0]["patch"].as_str().unwrap();
    assert!(
        child_patch.contains("kind: OCIRepository") && child_patch.contains("caCertificateRefs"),
        "{child_patch}"
    );

    // Traffic: every model, the unknown one, the budget, MCP, and failover last.
    let traffic: Vec<&TrafficSpec> = plan
        .steps
        .iter()
        .flat_map(|s| &s.actions)
        .filter_map(|a| {
            if let Action::Traffic(t) = a {
                Some(t)
            } else {
                None
            }
        })
        .collect();
    assert!(
        matches!(traffic.last(), Some(TrafficSpec::Failover { model, stop, expect })
        if model == "gpt-4o" && stop == "azure-e2e-primary" && expect == "azure-e2e-secondary")
    );
    assert!(text.contains("200 × 2 then 429 on request 3"), "{text}");
    assert!(
        text.contains("model `gpt-35-turbo` → 200 from azure-e2e-secondary's mock"),
        "{text}"
    );
}

#[test]
fn plan_changes_with_the_rendered_files() {
    // Copy the fixture, bump the EG chart and drop the MCP app: the plan must follow.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    let repo = dir
        .path()
        .join("kubernetes/apps/network/envoy-gateway/app/ocirepository.yaml");
    let text = std::fs::read_to_string(&repo)
        .unwrap()
        .replace("v1.6.7", "v1.6.8");
    std::fs::write(&repo, text).unwrap();
    std::fs::remove_dir_all(dir.path().join("kubernetes/apps/ai-gateway/mcp")).unwrap();
    let routes_ks = dir.path().join("kubernetes/apps/ai-gateway/routes/ks.yaml");
    let text = std::fs::read_to_string(&routes_ks)
        .unwrap()
        .replace("    - name: ai-gateway-mcp\n", "");
    std::fs::write(&routes_ks, text).unwrap();

    let tree = Tree::load(dir.path()).unwrap();
    let plan = plan::build(&layout(dir.path()), &tree, &config()).unwrap();
    let text = plan.to_string();
    assert!(text.contains("--version v1.6.8"), "{text}");
    assert!(!text.contains("mcp.e2e.test"), "{text}");
    assert!(!text.contains("traffic: MCP"), "{text}");
}

#[test]
fn a_tree_without_the_ai_gateway_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    std::fs::remove_dir_all(dir.path().join("kubernetes/apps/ai-gateway")).unwrap();
    let tree = Tree::load(dir.path()).unwrap();
    let err = plan::build(&layout(dir.path()), &tree, &config()).unwrap_err();
    assert!(err.contains("no AIGatewayRoute"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `kubectl kustomize` is the oracle for the kustomize semantics the plan relies on. Without it
/// the tests below print a skip message, unless `REQUIRE_ORACLES=1` (CI) makes that a failure.
#[allow(clippy::print_stderr)] // the skip message is for the person running the tests
fn kubectl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = e2e::preflight::find_in_path("kubectl", &path);
    if found.is_none() {
        assert!(
            std::env::var("REQUIRE_ORACLES").as_deref() != Ok("1"),
            "kubectl is required (REQUIRE_ORACLES=1)"
        );
        eprintln!("skipping: kubectl not on PATH (it is the oracle for kustomize builds)");
    }
    found
}

fn kustomize(kubectl: &Path, dir: &Path) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    e2e::rendered::parse_documents("built", &String::from_utf8_lossy(&out.stdout))
        .unwrap()
        .into_iter()
        .map(|d| d.value)
        .collect()
}

#[test]
fn fixture_builds_with_kustomize() {
    let Some(kubectl) = kubectl() else { return };
    let tree = Tree::load(&fixture()).unwrap();
    let dirs: std::collections::BTreeSet<String> = tree
        .docs
        .iter()
        .filter(|d| d.file.ends_with("/kustomization.yaml") && d.kind() == "Kustomization")
        .map(|d| d.file.trim_end_matches("/kustomization.yaml").to_owned())
        .collect();
    assert!(dirs.len() >= 10, "{dirs:?}");
    for dir in dirs {
        assert!(
            !kustomize(&kubectl, &fixture().join(&dir)).is_empty(),
            "{dir}"
        );
    }
}

#[test]
fn root_kustomization_patches_do_what_the_plan_says() {
    let Some(kubectl) = kubectl() else { return };
    let tree = Tree::load(&fixture()).unwrap();
    let plan = plan::build(&layout(&fixture()), &tree, &config()).unwrap();
    let root = plan
        .steps
        .iter()
        .flat_map(|s| &s.actions)
        .find_map(|a| match a {
            Action::Apply { object, .. } if object["metadata"]["name"] == "e2e-network" => {
                Some(object.clone())
            }
            _ => None,
        })
        .unwrap();

    // Apply the root's patches to the network namespace's child Kustomizations, as Flux would.
    let dir = tempfile::tempdir().unwrap();
    for app in ["envoy-gateway", "k8s-gateway"] {
        std::fs::copy(
            fixture().join(format!("kubernetes/apps/network/{app}/ks.yaml")),
            dir.path().join(format!("{app}.yaml")),
        )
        .unwrap();
    }
    let kustomization = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["envoy-gateway.yaml", "k8s-gateway.yaml"],
        "patches": root["spec"]["patches"],
    });
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        kustomization.to_string(),
    )
    .unwrap();
    let built = kustomize(&kubectl, dir.path());
    let by_name = |name: &str| {
        built
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap()
            .clone()
    };
    let (envoy, other) = (by_name("envoy-gateway"), by_name("k8s-gateway"));
    assert_eq!(envoy["spec"]["sourceRef"]["kind"], "OCIRepository");
    assert_eq!(envoy["spec"]["decryption"]["provider"], "sops");
    assert!(
        envoy["spec"].get("suspend").is_none(),
        "a needed app must not be suspended"
    );
    assert_eq!(
        other["spec"]["suspend"], true,
        "an app the AI Gateway does not need is suspended"
    );
    assert_eq!(
        envoy["spec"]["path"], "./kubernetes/apps/network/envoy-gateway/app",
        "the rest is untouched"
    );

    // The nested patch each child then applies to its BackendTLSPolicies.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture().join("kubernetes/apps/ai-gateway/mcp/app/backend.yaml"),
        dir.path().join("backend.yaml"),
    )
    .unwrap();
    let kustomization = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["backend.yaml"],
        "patches": envoy["spec"]["patches"],
    });
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        kustomization.to_string(),
    )
    .unwrap();
    let built = kustomize(&kubectl, dir.path());
    let policy = built
        .iter()
        .find(|o| o["kind"] == "BackendTLSPolicy")
        .unwrap();
    assert_eq!(
        policy["spec"]["validation"],
        serde_json::json!({"hostname": "mcp.e2e.test", "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": plan::TEST_CA_CONFIGMAP}]})
    );
    let backend = built.iter().find(|o| o["kind"] == "Backend").unwrap();
    assert_eq!(
        backend["spec"]["endpoints"][0]["fqdn"]["hostname"], "mcp.e2e.test",
        "other objects untouched"
    );
}
