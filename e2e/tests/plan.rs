//! The gateway view and the plan, from the real templates: `e2e/cluster.yaml` rendered the way
//! `cargo xtask configure` renders it (tests/common/mod.rs), plus variants of that config.
//!
//! The expected names are the ones docs/ai-gateway.md promises (Kustomizations, Gateway,
//! Service, routes, policies, Secrets); a template that renames one breaks these tests, and so
//! would break the harness that looks for it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use e2e::gateway::{CostType, GatewayView, ToolSelector};
use e2e::mock::Wire;
use e2e::plan::{self, Action, BudgetIdentity, E2eConfig, Layout, MockSpec, TrafficSpec};
use e2e::rendered::Tree;
use serde_json::Value;

const NS: &str = "envoy-ai-gateway-system";

fn layout(rendered: &Path) -> Layout {
    Layout {
        workspace: PathBuf::from("/ws"),
        rendered: rendered.to_path_buf(),
        scratch: PathBuf::from("/scratch"),
        age_key: rendered.join("age.key"),
    }
}

fn e2e_text() -> String {
    std::fs::read_to_string(common::crate_dir().join("cluster.yaml")).unwrap()
}

fn config() -> E2eConfig {
    E2eConfig::load(&common::crate_dir().join("cluster.yaml")).unwrap()
}

fn config_from(text: &str) -> E2eConfig {
    serde_saphyr::from_str(text).unwrap()
}

/// e2e/cluster.yaml with the top-level key `key` (and its indented block) removed.
fn without(text: &str, key: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with(&format!("{key}:")) {
            skipping = true;
            continue;
        }
        if skipping && (line.starts_with(' ') || line.starts_with('-')) {
            continue;
        }
        skipping = false;
        out.push_str(line);
        out.push('\n');
    }
    assert_ne!(out, text, "{key} is not in the config");
    out
}

fn traffic(plan: &plan::Plan) -> Vec<&TrafficSpec> {
    plan.steps
        .iter()
        .flat_map(|s| &s.actions)
        .filter_map(|a| match a {
            Action::Traffic(t) => Some(t),
            _ => None,
        })
        .collect()
}

fn applied(plan: &plan::Plan) -> Vec<&Value> {
    plan.steps
        .iter()
        .flat_map(|s| &s.actions)
        .filter_map(|a| match a {
            Action::Apply { object, .. } => Some(object),
            _ => None,
        })
        .collect()
}

#[test]
fn gateway_view_of_the_rendered_tree() {
    let rendered = common::render_e2e();
    let tree = Tree::load(rendered.path()).unwrap();
    let view = GatewayView::from_tree(&tree).unwrap();

    assert_eq!(view.namespace, NS);
    assert_eq!(view.gateway, (NS.to_owned(), "ai-gateway".to_owned()));
    let listener = view.listener.as_ref().unwrap();
    assert_eq!(
        (listener.name.as_str(), listener.port, &listener.hostname),
        ("http", 80, &None)
    );
    // The Envoy Service the EnvoyProxy pins; LoadBalancer because e2e/cluster.yaml sets
    // ai_gateway_addr.
    let service = view.service.as_ref().unwrap();
    assert_eq!(
        (
            service.namespace.as_str(),
            service.name.as_deref(),
            service.service_type.as_str()
        ),
        (NS, Some("ai-gateway"), "LoadBalancer")
    );
    // … and it is the Service the outer HTTPRoute `aiops` forwards to, on the listener's port.
    let aiops = tree
        .of_kind("HTTPRoute")
        .find(|d| d.name() == "aiops")
        .unwrap();
    let backend = &aiops.value["spec"]["rules"][0]["backendRefs"][0];
    assert_eq!(
        (
            backend["name"].as_str(),
            backend["namespace"].as_str(),
            backend["port"].as_u64()
        ),
        (Some("ai-gateway"), Some(NS), Some(80))
    );

    assert_eq!(view.routes, ["azure-openai"]);
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
        [
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
    let models: BTreeMap<&str, Vec<(&str, i64)>> = view
        .models
        .iter()
        .map(|(m, targets)| {
            (
                m.as_str(),
                targets
                    .iter()
                    .map(|t| (t.backend.as_str(), t.priority))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        models,
        BTreeMap::from([
            ("gpt-35-turbo", vec![("azure-e2e-secondary", 0)]),
            // Issue 16: Azure first, then OpenAI.
            (
                "gpt-4",
                vec![("azure-e2e-primary", 0), ("openai-e2e-openai", 1)]
            ),
            (
                "gpt-4o",
                vec![("azure-e2e-primary", 0), ("azure-e2e-secondary", 1)]
            ),
            ("e2e-mini", vec![("openai-e2e-openai", 0)]),
            ("e2e-llama", vec![("openai-e2e-local", 0)]),
            ("claude-e2e", vec![("anthropic-e2e-anthropic", 0)]),
            ("e2e-bedrock-llama", vec![("bedrock-e2e-bedrock", 0)]),
        ])
    );
    // Issue 16: every provider backend, with what its mock must expect.
    // (name, wire, host, port, TLS, policy type, region)
    type Row<'a> = (
        &'a str,
        Wire,
        &'a str,
        u16,
        bool,
        Option<&'a str>,
        Option<&'a str>,
    );
    let providers: Vec<Row<'_>> = view
        .providers
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.wire,
                p.host.hostname.as_str(),
                p.host.port,
                p.tls,
                p.policy.as_deref(),
                p.region.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        providers,
        [
            (
                "anthropic-e2e-anthropic",
                Wire::Anthropic,
                "api.anthropic.com",
                443,
                true,
                Some("AnthropicAPIKey"),
                None
            ),
            (
                "bedrock-e2e-bedrock",
                Wire::Bedrock,
                "bedrock-runtime.us-east-1.amazonaws.com",
                443,
                true,
                Some("AWSCredentials"),
                Some("us-east-1")
            ),
            (
                "openai-e2e-openai",
                Wire::OpenAi,
                "api.openai.com",
                443,
                true,
                Some("APIKey"),
                None
            ),
            (
                "openai-e2e-local",
                Wire::OpenAi,
                "e2e-llm.e2e-models.svc.cluster.local",
                8000,
                false,
                None,
                None
            ),
        ]
    );
    assert!(
        view.models
            .values()
            .flatten()
            .all(|t| t.route == "azure-openai")
    );

    // MCP: the MCPRoute `mcp` at /mcp, the backend named after the server (the tool prefix).
    assert_eq!(view.mcp.len(), 1);
    let mcp = &view.mcp[0];
    assert_eq!((mcp.name.as_str(), mcp.path.as_str()), ("mcp", "/mcp"));
    assert_eq!(mcp.backends[0].name, "e2e-tools");
    assert_eq!(mcp.backends[0].path, "/mcp/readonly");
    assert_eq!(
        mcp.backends[0].selector,
        ToolSelector::IncludeRegex(vec![".*issues?.*".into()])
    );
    assert_eq!(
        mcp.backends[0].api_key_header.as_deref(),
        Some("Authorization")
    );

    // Client keys: a SecurityPolicy on the HTTPRoute generated for the AIGatewayRoute, and the
    // MCPRoute's own apiKeyAuth; both read Secret ai-gateway-client-keys, strip the key and set
    // x-user-id to the client's name.
    let clients = ["e2e-app", "e2e-budget", "e2e-control"].map(str::to_owned);
    for (auth, policy) in [
        (
            view.client_auth.as_ref(),
            "SecurityPolicy/azure-openai-client-keys",
        ),
        (mcp.client_auth.as_ref(), "MCPRoute/mcp"),
    ] {
        let auth = auth.unwrap_or_else(|| panic!("{policy}: no client keys"));
        assert_eq!(auth.policy, policy);
        assert_eq!(auth.secret, "ai-gateway-client-keys");
        assert_eq!(auth.header, "Authorization");
        assert_eq!(auth.client_id_header.as_deref(), Some("x-user-id"));
        assert!(auth.sanitize, "{policy}");
        assert_eq!(auth.clients, clients);
    }

    // The token budget: one shared rule per x-user-id on the Gateway, charging total tokens.
    assert_eq!(view.budget.len(), 1);
    let rule = &view.budget[0];
    assert_eq!(
        (
            rule.policy.as_str(),
            rule.target.as_str(),
            rule.header.as_str(),
            rule.limit,
            rule.unit.as_str(),
            rule.cost,
            rule.shared
        ),
        (
            "ai-gateway-token-ratelimit",
            "Gateway/ai-gateway",
            "x-user-id",
            1000,
            "Hour",
            CostType::TotalToken,
            true
        )
    );

    // Failover: retry on the next priority, eject failing deployments, merge with the budget.
    let failover: Vec<&str> = view.failover_models().iter().map(|(m, _)| *m).collect();
    // gpt-4: Azure → OpenAI (issue 16); gpt-4o: between the two Azure resources.
    assert_eq!(failover, ["gpt-4", "gpt-4o"]);
    assert_eq!(view.failover.len(), 1);
    let policy = view.failover_policy("azure-openai").unwrap();
    assert_eq!(policy.policy, "azure-openai-failover");
    assert_eq!(policy.attempts_per_priority, Some(1));
    assert!(policy.num_retries >= 1);
    assert!(policy.triggers.iter().any(|t| t == "connect-failure"));
    assert!(policy.passive_ejection);
    assert_eq!(policy.merge_type.as_deref(), Some("StrategicMerge"));
    assert!(policy.retries_connect_failures_on_next_priority());
}

#[test]
fn plan_follows_the_rendered_files() {
    let rendered = common::render_e2e();
    let tree = Tree::load(rendered.path()).unwrap();
    let plan = plan::build(&layout(rendered.path()), &tree, &config()).unwrap();
    let text = plan.to_string();

    // Envoy Gateway: chart, version and values file come from the rendered HelmRelease/OCIRepository.
    assert!(
        text.contains("helm upgrade --install envoy-gateway oci://mirror.gcr.io/envoyproxy/gateway-helm --version v1.6.7 --namespace network"),
        "{text}"
    );
    // The Kustomizations of docs/ai-gateway.md, and the one they depend on in `network`.
    let order: Vec<String> = plan
        .kustomizations
        .iter()
        .map(|ks| format!("{}/{}", ks.namespace, ks.name))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    let mut expected: Vec<String> = [
        "anthropic",
        "azure-openai",
        "bedrock",
        "openai",
        "controller",
        "crds",
        "gateway",
        "mcp",
        "redis",
        "routes",
    ]
    .iter()
    .map(|n| format!("{NS}/{n}"))
    .chain(["network/envoy-gateway".to_owned()])
    .collect();
    expected.sort();
    assert_eq!(sorted, expected);
    // Waits follow dependsOn.
    let pos = |name: &str| order.iter().position(|o| o.ends_with(name)).unwrap();
    for (before, after) in [
        ("/crds", "/controller"),
        ("network/envoy-gateway", "/controller"),
        ("/controller", "/gateway"),
        ("/controller", "/azure-openai"),
        ("/gateway", "/mcp"),
        ("/gateway", "/routes"),
        ("/azure-openai", "/routes"),
        ("/redis", "/routes"),
    ] {
        assert!(
            pos(before) < pos(after),
            "{before} before {after}: {order:?}"
        );
    }

    // One mock per rendered upstream host, with the key from e2e/cluster.yaml.
    let mocks: Vec<&MockSpec> = plan
        .steps
        .iter()
        .flat_map(|s| &s.actions)
        .filter_map(|a| match a {
            Action::StartMock(m) => Some(m),
            _ => None,
        })
        .collect();
    let hosts: Vec<&str> = mocks.iter().map(|m| m.hostname()).collect();
    assert_eq!(
        hosts,
        [
            "e2e-primary.openai.azure.com",
            "e2e-secondary.openai.azure.com",
            "mcp.e2e.test",
            "api.anthropic.com",
            "bedrock-runtime.us-east-1.amazonaws.com",
            "api.openai.com",
            "e2e-llm.e2e-models.svc.cluster.local",
            "oci.e2e.test"
        ]
    );
    // Issue 16: each provider's mock expects that provider's credential from e2e/cluster.yaml,
    // and serves the model ids the routes send (the overrides where there are some).
    let provider = |name: &str| {
        mocks
            .iter()
            .find_map(|m| match m {
                MockSpec::Provider {
                    name: n,
                    wire,
                    tls,
                    credential,
                    region,
                    models,
                    ..
                } if n == name => Some((
                    *wire,
                    *tls,
                    credential.clone(),
                    region.clone(),
                    models.clone(),
                )),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no mock {name}"))
    };
    assert_eq!(
        provider("openai-e2e-openai"),
        (
            Wire::OpenAi,
            true,
            Some("fake-openai-key".into()),
            None,
            vec!["gpt-4o-mini".into(), "gpt-4".into()]
        )
    );
    assert_eq!(
        provider("openai-e2e-local"),
        (Wire::OpenAi, false, None, None, vec!["e2e-llama".into()])
    );
    assert_eq!(
        provider("anthropic-e2e-anthropic"),
        (
            Wire::Anthropic,
            true,
            Some("fake-anthropic-key".into()),
            None,
            vec!["claude-e2e".into()]
        )
    );
    assert_eq!(
        provider("bedrock-e2e-bedrock"),
        (
            Wire::Bedrock,
            true,
            Some("AKIAE2EFAKEKEY000001".into()),
            Some("us-east-1".into()),
            vec!["us.meta.llama3-2-1b-instruct-v1:0".into()]
        )
    );
    // One traffic check per provider, in its wire format, and the cross-provider failover.
    let provider_checks: Vec<(&str, &str, Wire, &str)> = traffic(&plan)
        .into_iter()
        .filter_map(|t| match t {
            TrafficSpec::Provider {
                model,
                backend,
                wire,
                upstream_model,
                ..
            } => Some((
                model.as_str(),
                backend.as_str(),
                *wire,
                upstream_model.as_str(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        provider_checks,
        [
            (
                "claude-e2e",
                "anthropic-e2e-anthropic",
                Wire::Anthropic,
                "claude-e2e"
            ),
            (
                "e2e-bedrock-llama",
                "bedrock-e2e-bedrock",
                Wire::Bedrock,
                "us.meta.llama3-2-1b-instruct-v1:0"
            ),
            ("e2e-llama", "openai-e2e-local", Wire::OpenAi, "e2e-llama"),
            ("e2e-mini", "openai-e2e-openai", Wire::OpenAi, "gpt-4o-mini"),
        ]
    );
    assert!(traffic(&plan).iter().any(|t| matches!(t,
        TrafficSpec::Failover { model, stop, expect, .. }
            if model == "gpt-4" && stop == "azure-e2e-primary" && expect == "openai-e2e-openai")));
    assert!(
        matches!(mocks[0], MockSpec::Azure { api_key, deployments, port: 443, .. }
            if api_key == "fake-api-key-primary" && deployments == &["gpt-4", "gpt-4o"])
    );
    assert!(
        matches!(mocks[2], MockSpec::Mcp { path, api_key: Some(key), port: 443, .. }
            if path == "/mcp/readonly" && key == "fake-mcp-token")
    );

    // The network app renders a Certificate and a PodMonitor: both CRD sets are installed.
    assert!(text.contains("cert-manager.crds.yaml"), "{text}");
    assert!(text.contains("stripped-down-crds.yaml"), "{text}");
    // envoy-ratelimit is restarted in Envoy Gateway's namespace once Redis is up.
    assert!(
        text.contains("kubectl -n network rollout restart deployment/envoy-ratelimit"),
        "{text}"
    );

    // Root Kustomizations for the two namespace directories, children re-pointed at the OCI
    // source, BackendTLSPolicies patched to the test CA.
    let roots: Vec<&Value> = applied(&plan)
        .into_iter()
        .filter(|o| o["kind"] == "Kustomization")
        .collect();
    let paths: Vec<&str> = roots
        .iter()
        .map(|r| r["spec"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["./kubernetes/apps/ai-gateway", "./kubernetes/apps/network"]
    );
    let child_patch = roots[0]["spec"]["patches"][0]["patch"].as_str().unwrap();
    assert!(
        child_patch.contains("kind: OCIRepository") && child_patch.contains("caCertificateRefs"),
        "{child_patch}"
    );

    // Checks: every rendered AI object and policy by name.
    let checks: BTreeMap<&str, Vec<&str>> = plan
        .steps
        .iter()
        .flat_map(|s| &s.actions)
        .filter_map(|a| match a {
            Action::Check(c) => {
                Some((c.kind, c.expected.iter().map(|e| e.name.as_str()).collect()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(checks["AIGatewayRoute"], ["azure-openai"]);
    assert_eq!(checks["MCPRoute"], ["mcp"]);
    assert_eq!(checks["Gateway"], ["ai-gateway"]);
    assert_eq!(
        checks["BackendTrafficPolicy"],
        [
            "ai-gateway-token-ratelimit",
            "aiops-no-retry",
            "azure-openai-failover"
        ]
    );
    assert_eq!(checks["SecurityPolicy"], ["azure-openai-client-keys"]);
    assert_eq!(checks["ClientTrafficPolicy"], ["ai-gateway"]);

    // Traffic: every model with the first client key, the unknown model, the key checks, the
    // budget on the key's name across two models, MCP, and failover last.
    let app = Some("e2e-app".to_owned());
    let traffic = traffic(&plan);
    let routes: Vec<(&str, &str)> = traffic
        .iter()
        .filter_map(|t| match t {
            TrafficSpec::Route {
                model,
                backend,
                client,
                ..
            } => {
                assert_eq!(client, &app);
                Some((model.as_str(), backend.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        routes,
        [
            ("gpt-35-turbo", "azure-e2e-secondary"),
            ("gpt-4", "azure-e2e-primary"),
            ("gpt-4o", "azure-e2e-primary")
        ]
    );
    assert!(traffic.iter().any(|t| matches!(t,
        TrafficSpec::ClientKeys { header, mcp_path: Some(path), .. } if header == "Authorization" && path == "/mcp")));
    assert!(traffic.iter().any(|t| matches!(t,
        TrafficSpec::Budget { shared: true, models, identity: BudgetIdentity::ClientKey { client, control }, .. }
            if models.len() == 2 && client == "e2e-budget" && control == "e2e-control")));
    assert!(traffic.iter().any(|t| matches!(t,
        TrafficSpec::Mcp { route, client, .. } if route == "mcp" && client == &app)));
    assert!(
        matches!(traffic.last(), Some(TrafficSpec::Failover { model, stop, expect, first_try: true, .. })
            if model == "gpt-4o" && stop == "azure-e2e-primary" && expect == "azure-e2e-secondary"),
        "{traffic:?}"
    );
    assert!(text.contains("200 × 2 then 429 on request 3"), "{text}");
}

/// The plaintext the harness gives the mocks and clients (from e2e/cluster.yaml) is what Flux
/// will decrypt from the sealed Secrets with the run's age key.
#[test]
fn mock_keys_are_what_the_sealed_secrets_hold() {
    let rendered = common::render_e2e();
    let identities = rendered.identities();
    let decrypt = |file: &str| -> Vec<Value> {
        let text = std::fs::read_to_string(rendered.path().join(file)).unwrap();
        assert!(text.contains("ENC[AES256_GCM,"), "{file} is not encrypted");
        let plain = secrets::decrypt(&text, &identities).unwrap().to_yaml(2);
        e2e::rendered::parse_documents(file, &plain)
            .unwrap()
            .into_iter()
            .map(|d| d.value)
            .collect()
    };
    let tree = Tree::load(rendered.path()).unwrap();
    let plan = plan::build(&layout(rendered.path()), &tree, &config()).unwrap();
    let mut azure_keys = BTreeMap::new();
    let mut mcp_keys = BTreeMap::new();
    for action in plan.steps.iter().flat_map(|s| &s.actions) {
        match action {
            Action::StartMock(MockSpec::Azure { name, api_key, .. }) => {
                azure_keys.insert(name.clone(), api_key.clone());
            }
            Action::StartMock(MockSpec::Mcp {
                name,
                api_key: Some(key),
                ..
            }) => {
                mcp_keys.insert(name.clone(), key.clone());
            }
            _ => {}
        }
    }
    let sealed: BTreeMap<String, String> =
        decrypt("kubernetes/apps/ai-gateway/backends/azure-openai/app/secret.sops.yaml")
            .iter()
            .map(|d| {
                (
                    d["metadata"]["name"].as_str().unwrap().to_owned(),
                    d["stringData"]["apiKey"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
    // Mock `azure-<deployment>` ↔ Secret `azure-<deployment>-apikey` (the BackendSecurityPolicy's).
    let expected: BTreeMap<String, String> = azure_keys
        .iter()
        .map(|(mock, key)| (format!("{mock}-apikey"), key.clone()))
        .collect();
    assert_eq!(sealed, expected);

    let mcp = decrypt("kubernetes/apps/ai-gateway/mcp/app/secret.sops.yaml");
    assert_eq!(mcp[0]["metadata"]["name"], "mcp-e2e-tools-apikey");
    assert_eq!(
        mcp[0]["stringData"]["apiKey"].as_str(),
        mcp_keys.get("mcp-e2e-tools").map(String::as_str)
    );

    let clients = decrypt("kubernetes/apps/ai-gateway/gateway/app/secret.sops.yaml");
    assert_eq!(clients[0]["metadata"]["name"], "ai-gateway-client-keys");
    let sealed: BTreeMap<String, String> = clients[0]["stringData"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let config = config();
    let configured: BTreeMap<String, String> = config
        .ai_gateway_client_keys
        .iter()
        .map(|c| (c.name.clone(), c.key.clone()))
        .collect();
    assert_eq!(sealed, configured);
}

#[test]
fn plan_changes_with_the_rendered_files() {
    // A plan is built from the files, not from what they usually say: bump the EG chart in the
    // rendered tree and the Helm command follows.
    let rendered = common::render_e2e();
    let repo = rendered
        .path()
        .join("kubernetes/apps/network/envoy-gateway/app/ocirepository.yaml");
    let text = std::fs::read_to_string(&repo).unwrap();
    assert!(text.contains("v1.6.7"), "{text}");
    std::fs::write(&repo, text.replace("v1.6.7", "v1.6.8")).unwrap();
    let tree = Tree::load(rendered.path()).unwrap();
    let plan = plan::build(&layout(rendered.path()), &tree, &config()).unwrap();
    assert!(plan.to_string().contains("--version v1.6.8"));
}

#[test]
fn plan_follows_the_config_options() {
    // No MCP, no client keys, no rate limit: none of their steps or checks.
    let text = e2e_text().replace(
        "ai_gateway_mcp_enabled: true",
        "ai_gateway_mcp_enabled: false",
    );
    let text = without(
        &without(
            &without(&text, "ai_gateway_mcp_servers"),
            "ai_gateway_client_keys",
        ),
        "ai_gateway_ratelimit_enabled",
    );
    let text = without(&text, "ai_gateway_ratelimit_default_limit");
    // Without client keys `ai_gateway_addr` is not opened (issue 13), so the harness, which
    // comes in through that LoadBalancer address, refuses the tree before anything runs.
    let closed = common::render_config(&text);
    let err = plan::build(
        &layout(closed.path()),
        &Tree::load(closed.path()).unwrap(),
        &config_from(&text),
    )
    .unwrap_err();
    assert!(
        err.contains("is ClusterIP") && err.contains("ai_gateway_client_keys"),
        "{err}"
    );
    // The same with one client key that no check uses for its budget: the gateway is
    // reachable again, and no rate-limit or MCP step appears.
    let text = format!(
        "{text}ai_gateway_client_keys:\n  - name: \"e2e-app\"\n    key: \"fake-client-key-app\"\n"
    );
    let rendered = common::render_config(&text);
    let tree = Tree::load(rendered.path()).unwrap();
    let plan = plan::build(&layout(rendered.path()), &tree, &config_from(&text)).unwrap();
    let out = plan.to_string();
    for absent in [
        "mcp.e2e.test",
        "traffic: MCP",
        "budget",
        "envoy-ratelimit",
        "/redis",
    ] {
        assert!(!out.contains(absent), "{absent}:\n{out}");
    }
    let names: Vec<&str> = plan
        .kustomizations
        .iter()
        .map(|ks| ks.name.as_str())
        .collect();
    assert!(
        !names.contains(&"mcp") && !names.contains(&"redis"),
        "{names:?}"
    );
    assert!(
        traffic(&plan)
            .iter()
            .all(|t| !matches!(t, TrafficSpec::Budget { .. } | TrafficSpec::Mcp { .. }))
    );
    // Failover still follows the two deployments of gpt-4o.
    assert!(matches!(
        traffic(&plan).last(),
        Some(TrafficSpec::Failover {
            first_try: true,
            ..
        })
    ));
}

#[test]
fn every_model_is_planned_however_many_aigatewayroutes_carry_them() {
    // Beyond 15 models the templates may split the AIGatewayRoute (`azure-openai`,
    // `azure-openai-2`, …: Gateway API caps an HTTPRoute at 16 rules and v0.4.0 adds a
    // catch-all). The harness must not assume one route: with 20 models, every model is routed
    // by some rendered AIGatewayRoute, gets its own traffic check against the right mock, and
    // every route that carries models is behind the client keys the requests then carry.
    let many: Vec<String> = (1..=17).map(|i| format!("e2e-model-{i:02}")).collect();
    let third = format!(
        "  - name: \"e2e-third\"\n    host: \"e2e-third.openai.azure.com\"\n    api_key: \"fake-api-key-third\"\n    models: [{}]\nai_gateway_openai_backends:",
        many.iter()
            .map(|m| format!("\"{m}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let text = e2e_text().replacen("ai_gateway_openai_backends:", &third, 1);
    assert_ne!(text, e2e_text());
    let rendered = common::render_config(&text);
    let tree = Tree::load(rendered.path()).unwrap();
    let view = GatewayView::from_tree(&tree).unwrap();
    let rendered_routes: Vec<&str> = tree.of_kind("AIGatewayRoute").map(|d| d.name()).collect();
    assert_eq!(view.routes, rendered_routes);
    // 3 Azure models, 4 of the other providers (issue 16), 17 more.
    assert_eq!(view.models.len(), 24, "{:?}", view.models.keys());
    for (model, targets) in &view.models {
        assert!(!targets.is_empty(), "{model}");
        for t in targets {
            assert!(view.routes.contains(&t.route), "{model}: {t:?}");
        }
    }
    for model in &many {
        let targets = &view.models[model];
        assert_eq!(targets.len(), 1, "{model}: {targets:?}");
        assert_eq!(targets[0].backend, "azure-e2e-third");
    }

    let plan = plan::build(&layout(rendered.path()), &tree, &config_from(&text)).unwrap();
    let routed: BTreeMap<&str, (&str, &Option<String>)> = traffic(&plan)
        .into_iter()
        .filter_map(|t| match t {
            TrafficSpec::Route {
                model,
                backend,
                client,
                ..
            }
            | TrafficSpec::Provider {
                model,
                backend,
                client,
                ..
            } => Some((model.as_str(), (backend.as_str(), client))),
            _ => None,
        })
        .collect();
    assert_eq!(
        routed.keys().copied().collect::<Vec<_>>(),
        view.models.keys().map(String::as_str).collect::<Vec<_>>()
    );
    for model in &many {
        assert_eq!(
            routed[model.as_str()],
            ("azure-e2e-third", &Some("e2e-app".to_owned()))
        );
    }
    let third_mock = plan
        .steps
        .iter()
        .flat_map(|s| &s.actions)
        .find_map(|a| match a {
            Action::StartMock(MockSpec::Azure {
                name, deployments, ..
            }) if name == "azure-e2e-third" => Some(deployments.clone()),
            _ => None,
        })
        .expect("a mock for the third deployment");
    assert_eq!(third_mock, many);

    // Every route that carries a model is behind an apiKeyAuth SecurityPolicy.
    let guarded: Vec<&str> = tree
        .of_kind("SecurityPolicy")
        .filter(|d| d.value.pointer("/spec/apiKeyAuth").is_some())
        .flat_map(|d| {
            d.value["spec"]["targetRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["kind"] == "HTTPRoute")
                .filter_map(|t| t["name"].as_str())
        })
        .collect();
    for route in &view.routes {
        assert!(
            guarded.contains(&route.as_str()),
            "AIGatewayRoute `{route}` has no client keys: {guarded:?}"
        );
    }
}

#[test]
fn a_gateway_the_harness_cannot_reach_is_refused_before_anything_runs() {
    // Without ai_gateway_addr the AI gateway's Envoy Service is ClusterIP.
    let text = without(&e2e_text(), "ai_gateway_addr");
    let rendered = common::render_config(&text);
    let tree = Tree::load(rendered.path()).unwrap();
    let err = plan::build(&layout(rendered.path()), &tree, &config_from(&text)).unwrap_err();
    assert!(err.contains("is ClusterIP"), "{err}");
}

#[test]
fn client_keys_must_be_known_and_enough_for_the_budget() {
    let rendered = common::render_e2e();
    let tree = Tree::load(rendered.path()).unwrap();
    // A client the rendered Secret holds but the harness has no key for.
    let text = e2e_text().replace(
        "  - name: \"e2e-control\"\n    key: \"fake-client-key-control\"\n",
        "",
    );
    assert_ne!(text, e2e_text());
    let err = plan::build(&layout(rendered.path()), &tree, &config_from(&text)).unwrap_err();
    assert!(
        err.contains("e2e-control") && err.contains("does not list"),
        "{err}"
    );

    // Two clients render fine, but the budget check keyed on the client needs three.
    let rendered = common::render_config(&text);
    let tree = Tree::load(rendered.path()).unwrap();
    let err = plan::build(&layout(rendered.path()), &tree, &config_from(&text)).unwrap_err();
    assert!(err.contains("needs three"), "{err}");
}

#[test]
fn a_tree_without_the_ai_gateway_is_refused() {
    let rendered = common::render_e2e();
    std::fs::remove_dir_all(rendered.path().join("kubernetes/apps/ai-gateway")).unwrap();
    let tree = Tree::load(rendered.path()).unwrap();
    let err = plan::build(&layout(rendered.path()), &tree, &config()).unwrap_err();
    assert!(err.contains("no AIGatewayRoute"), "{err}");
}

/// The harness renders with the real commands; every flag it passes must be one the xtask
/// subcommand parses (read from its source, `lexopt::Arg::Long("…")`), and configure must find
/// its key files where init made them.
#[cfg(feature = "live")]
#[test]
fn render_commands_match_the_xtask_interface() {
    let dir = Path::new("/scratch/repo");
    let commands = e2e::harness::render_commands(dir);
    let subcommands: Vec<&str> = commands.iter().map(|c| c[2].as_str()).collect();
    assert_eq!(subcommands, ["init", "configure"]);
    for command in &commands {
        assert_eq!(&command[..2], ["cargo", "xtask"]);
        let source = std::fs::read_to_string(
            common::workspace().join(format!("xtask/src/{}.rs", command[2])),
        )
        .unwrap();
        for flag in command.iter().filter_map(|a| a.strip_prefix("--")) {
            assert!(
                source.contains(&format!("Arg::Long(\"{flag}\")")),
                "`cargo xtask {}` has no --{flag}",
                command[2]
            );
        }
    }
    let value = |command: &[String], flag: &str| {
        let i = command.iter().position(|a| a == flag).unwrap();
        PathBuf::from(&command[i + 1])
    };
    // init writes the keys into --dir; configure reads them from the directory of --config and
    // writes the tree next to them.
    assert_eq!(value(&commands[0], "--dir"), dir);
    assert_eq!(value(&commands[1], "--config").parent(), Some(dir));
    assert_eq!(value(&commands[1], "--nodes").parent(), Some(dir));
    assert_eq!(value(&commands[1], "--out"), dir);
}

#[cfg(feature = "live")]
#[test]
fn render_dir_holds_the_e2e_configs_and_no_user_keys() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("repo");
    e2e::harness::prepare_render_dir(&common::workspace(), &dir).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("cloudflare-tunnel.json")), 0o600);
    assert_eq!(
        std::fs::read(dir.join("cluster.yaml")).unwrap(),
        std::fs::read(common::crate_dir().join("cluster.yaml")).unwrap()
    );
    // The keys are init's to make, fresh: nothing of the user's is copied.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["cloudflare-tunnel.json", "cluster.yaml", "nodes.yaml"]
    );
    // A second preparation of the same directory refuses to overwrite.
    assert!(e2e::harness::prepare_render_dir(&common::workspace(), &dir).is_err());
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

fn kustomize(kubectl: &Path, dir: &Path) -> Vec<Value> {
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

/// The root Kustomizations apply the namespace directories as they are: each must build, and
/// give every child Kustomization its namespace.
#[test]
fn namespace_directories_build_with_kustomize() {
    let Some(kubectl) = kubectl() else { return };
    let rendered = common::render_e2e();
    for (dir, namespace, children) in [
        (
            "ai-gateway",
            NS,
            &[
                "anthropic",
                "azure-openai",
                "bedrock",
                "controller",
                "crds",
                "gateway",
                "mcp",
                "openai",
                "redis",
                "routes",
            ][..],
        ),
        (
            "network",
            "network",
            &[
                "cloudflare-dns",
                "cloudflare-tunnel",
                "envoy-gateway",
                "k8s-gateway",
            ][..],
        ),
    ] {
        let built = kustomize(&kubectl, &rendered.path().join("kubernetes/apps").join(dir));
        let mut names: Vec<&str> = built
            .iter()
            .filter(|o| o["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1")
            .inspect(|o| assert_eq!(o["metadata"]["namespace"], namespace, "{o}"))
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, children, "{dir}");
        // The sops component's cluster-secrets (for postBuild substitution) comes along.
        assert!(
            built
                .iter()
                .any(|o| o["kind"] == "Secret" && o["metadata"]["name"] == "cluster-secrets"),
            "{dir}"
        );
    }
}

#[test]
fn root_kustomization_patches_do_what_the_plan_says() {
    let Some(kubectl) = kubectl() else { return };
    let rendered = common::render_e2e();
    let root_dir = rendered.path();
    let tree = Tree::load(root_dir).unwrap();
    let plan = plan::build(&layout(root_dir), &tree, &config()).unwrap();
    let root = applied(&plan)
        .into_iter()
        .find(|o| o["metadata"]["name"] == "e2e-network")
        .unwrap()
        .clone();

    // Apply the root's patches to the network namespace's child Kustomizations, as Flux would.
    let apps = [
        "cloudflare-dns",
        "cloudflare-tunnel",
        "envoy-gateway",
        "k8s-gateway",
    ];
    let dir = tempfile::tempdir().unwrap();
    for app in apps {
        std::fs::copy(
            root_dir.join(format!("kubernetes/apps/network/{app}/ks.yaml")),
            dir.path().join(format!("{app}.yaml")),
        )
        .unwrap();
    }
    let kustomization = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": apps.map(|a| format!("{a}.yaml")),
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
    let envoy = by_name("envoy-gateway");
    assert_eq!(envoy["spec"]["sourceRef"]["kind"], "OCIRepository");
    assert_eq!(envoy["spec"]["decryption"]["provider"], "sops");
    assert!(
        envoy["spec"].get("suspend").is_none(),
        "a needed app must not be suspended"
    );
    for other in ["cloudflare-dns", "cloudflare-tunnel", "k8s-gateway"] {
        assert_eq!(
            by_name(other)["spec"]["suspend"],
            true,
            "{other}: an app the AI Gateway does not need is suspended"
        );
    }
    assert_eq!(
        envoy["spec"]["path"], "./kubernetes/apps/network/envoy-gateway/app",
        "the rest is untouched"
    );
    assert!(
        envoy["spec"]["postBuild"]["substituteFrom"].is_array(),
        "the rest is untouched"
    );

    // The nested patch each child then applies to its BackendTLSPolicies.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root_dir.join("kubernetes/apps/ai-gateway/mcp/app/backend.yaml"),
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

/// Issue 13: the live hardening checks follow the rendered tree (e2e/cluster.yaml has MCP with a
/// token, rate limits, client keys and the gateway's own address).
#[test]
fn hardening_checks_follow_the_rendered_files() {
    use e2e::hardening::{self, HardeningSpec};
    let rendered = common::render_e2e();
    let tree = Tree::load(rendered.path()).unwrap();
    let view = GatewayView::from_tree(&tree).unwrap();
    let specs = hardening::specs(&tree, &view);
    let text: Vec<String> = specs.iter().map(ToString::to_string).collect();
    assert!(
        specs.contains(&HardeningSpec::ForgedMcpHeaders {
            route: format!("{NS}/mcp"),
            backends: vec!["e2e-tools".into()],
        }),
        "{text:#?}"
    );
    assert!(specs.contains(&HardeningSpec::SessionSeed {
        namespace: NS.into()
    }));
    assert!(
        specs.contains(&HardeningSpec::NoRetry {
            route: format!("{NS}/aiops"),
            envoys: vec![("network".into(), "envoy-internal".into())],
        }),
        "{text:#?}"
    );
    assert!(specs.contains(&HardeningSpec::RedisIsolated {
        host: format!("redis.{NS}.svc.cluster.local"),
        port: 6379,
    }));
    let Some(HardeningSpec::MetricsAnswer { targets }) = specs
        .iter()
        .find(|s| matches!(s, HardeningSpec::MetricsAnswer { .. }))
    else {
        panic!("no metrics check: {text:#?}");
    };
    let ports: Vec<u16> = targets.iter().map(|t| t.port).collect();
    assert_eq!(ports, [19001, 1064, 9090]);

    // The rendered controller and pods these checks judge.
    let plan = plan::build(&layout(rendered.path()), &tree, &config()).unwrap();
    let steps = plan.to_string();
    assert!(steps.contains("forged MCP headers"), "{steps}");
    assert!(steps.contains("Redis isolated"), "{steps}");
}
