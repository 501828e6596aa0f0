//! Issue 16: the AI Gateway providers beyond Azure API keys, rendered in memory.
//!
//! The `providers` configuration (`fixtures/ai-gateway-providers.yaml` in place of the AI section
//! of `public.yaml`) has Azure with an API key and with Entra ID, OpenAI, an in-cluster
//! OpenAI-compatible Service, Anthropic and Bedrock, and `gpt-4o` failing over from Azure to
//! OpenAI. Each test reads the rendered objects and compares them with what AI Gateway v0.4.0
//! reads (schema names, policy types, Secret keys: docs/ai-gateway.md, "Providers"); the
//! snapshot of the whole AI output is `ai_gateway__providers.snap` (tests/ai_gateway.rs), and
//! `verify` with the pinned schemas runs on it there too. Fake secrets stay in memory.

#![allow(clippy::print_stderr)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use render::Rendered;
use serde_json::Value;

const AI_DIR: &str = "kubernetes/apps/ai-gateway/";
const PROVIDERS_AI: &str = include_str!("fixtures/ai-gateway-providers.yaml");

fn read(rel: &str) -> String {
    std::fs::read_to_string(common::repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `public.yaml` with `ai` as its AI section.
fn render_with_ai(ai: &str) -> (schema::Config, Rendered) {
    let public = read(".github/tests/public.yaml");
    let cut = public
        .find("\n# AI Gateway")
        .expect("public.yaml has an AI section");
    let cluster = public[..=cut].to_owned() + ai;
    let nodes = read(".github/tests/nodes.yaml");
    let out = schema::load_str(
        &cluster,
        Path::new("cluster.yaml"),
        &nodes,
        Path::new("nodes.yaml"),
    );
    let Some(config) = out.config else {
        panic!(
            "invalid:\n{}",
            out.diagnostics
                .iter()
                .map(|d| d.render(Some(&cluster)))
                .collect::<String>()
        )
    };
    let rendered = render::render_templates(
        &common::repo_root().join("templates"),
        &config.context(),
        &common::fake_inputs(),
    )
    .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.render(None)).collect::<String>()));
    (config, rendered)
}

/// The AI objects by (kind, name), with the file they are in.
fn objects(r: &Rendered) -> BTreeMap<(String, String), (String, Value)> {
    let mut out = BTreeMap::new();
    for (path, doc) in common::all_documents(r) {
        if !path.starts_with(AI_DIR) || doc.is_null() {
            continue;
        }
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() {
            continue; // kustomize's own kustomization.yaml files
        }
        let old = out.insert((kind.clone(), name.clone()), (path, doc));
        assert!(old.is_none(), "{kind} {name} rendered twice");
    }
    out
}

fn get<'a>(
    objs: &'a BTreeMap<(String, String), (String, Value)>,
    kind: &str,
    name: &str,
) -> &'a Value {
    &objs
        .get(&(kind.to_owned(), name.to_owned()))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .1
}

fn has(objs: &BTreeMap<(String, String), (String, Value)>, kind: &str, name: &str) -> bool {
    objs.contains_key(&(kind.to_owned(), name.to_owned()))
}

/// The policy targeting AIServiceBackend `backend`.
fn policy_of<'a>(
    objs: &'a BTreeMap<(String, String), (String, Value)>,
    backend: &str,
) -> Option<&'a Value> {
    let found: Vec<&Value> = objs
        .iter()
        .filter(|((k, _), _)| k == "BackendSecurityPolicy")
        .map(|(_, (_, d))| d)
        .filter(|d| {
            d["spec"]["targetRefs"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["name"] == backend))
        })
        .collect();
    assert!(found.len() <= 1, "{backend}: several policies");
    found.first().copied()
}

/// One row of what each provider needs: AIServiceBackend, schema (name, version), Backend
/// (host, port), TLS, policy type, Secret key.
struct Want {
    backend: &'static str,
    schema: (&'static str, Option<&'static str>),
    endpoint: (&'static str, i64),
    tls: bool,
    policy: Option<(&'static str, &'static str)>,
}

#[test]
fn every_provider_gets_its_schema_policy_and_secret_key() {
    let (_, r) = render_with_ai(PROVIDERS_AI);
    let objs = objects(&r);
    let wants = [
        Want {
            backend: "azure-eastus",
            schema: ("AzureOpenAI", Some("2025-01-01-preview")),
            endpoint: ("contoso-eastus.openai.azure.com", 443),
            tls: true,
            policy: Some(("AzureAPIKey", "apiKey")),
        },
        Want {
            backend: "azure-entra",
            schema: ("AzureOpenAI", Some("2025-01-01-preview")),
            endpoint: ("contoso-entra.openai.azure.com", 443),
            tls: true,
            policy: Some(("AzureCredentials", "client-secret")),
        },
        Want {
            backend: "openai-openai",
            schema: ("OpenAI", Some("v1")),
            endpoint: ("api.openai.com", 443),
            tls: true,
            policy: Some(("APIKey", "apiKey")),
        },
        Want {
            backend: "openai-ollama",
            schema: ("OpenAI", Some("v1")),
            endpoint: ("ollama.ai.svc.cluster.local", 11434),
            tls: false,
            policy: None,
        },
        Want {
            backend: "anthropic-anthropic",
            schema: ("Anthropic", None),
            endpoint: ("api.anthropic.com", 443),
            tls: true,
            policy: Some(("AnthropicAPIKey", "apiKey")),
        },
        Want {
            backend: "bedrock-us",
            schema: ("AWSBedrock", None),
            endpoint: ("bedrock-runtime.us-east-1.amazonaws.com", 443),
            tls: true,
            policy: Some(("AWSCredentials", "credentials")),
        },
    ];
    let backends = objs.keys().filter(|(k, _)| k == "AIServiceBackend").count();
    assert_eq!(backends, wants.len(), "one AIServiceBackend per entry");
    for w in &wants {
        let sb = get(&objs, "AIServiceBackend", w.backend);
        assert_eq!(sb["spec"]["schema"]["name"], w.schema.0, "{}", w.backend);
        assert_eq!(
            sb["spec"]["schema"]["version"].as_str(),
            w.schema.1,
            "{}",
            w.backend
        );
        assert_eq!(sb["spec"]["backendRef"]["kind"], "Backend", "{}", w.backend);
        // Nothing of the client's Authorization reaches any provider.
        assert_eq!(
            sb["spec"]["headerMutation"]["remove"],
            serde_json::json!(["authorization"]),
            "{}",
            w.backend
        );
        let be = get(&objs, "Backend", w.backend);
        assert_eq!(be["spec"]["endpoints"][0]["fqdn"]["hostname"], w.endpoint.0);
        assert_eq!(be["spec"]["endpoints"][0]["fqdn"]["port"], w.endpoint.1);
        let tls_name = format!("{}-tls", w.backend);
        assert_eq!(
            has(&objs, "BackendTLSPolicy", &tls_name),
            w.tls,
            "{}",
            w.backend
        );
        if w.tls {
            let tls = get(&objs, "BackendTLSPolicy", &tls_name);
            assert_eq!(tls["spec"]["validation"]["hostname"], w.endpoint.0);
        }
        let policy = policy_of(&objs, w.backend);
        let Some((ty, key)) = w.policy else {
            assert!(
                policy.is_none(),
                "{}: a policy without credentials",
                w.backend
            );
            continue;
        };
        let policy = policy.unwrap_or_else(|| panic!("{}: no policy", w.backend));
        assert_eq!(policy["spec"]["type"], ty, "{}", w.backend);
        let secret_ref = match ty {
            "AzureAPIKey" => &policy["spec"]["azureAPIKey"]["secretRef"],
            "AzureCredentials" => &policy["spec"]["azureCredentials"]["clientSecretRef"],
            "APIKey" => &policy["spec"]["apiKey"]["secretRef"],
            "AnthropicAPIKey" => &policy["spec"]["anthropicAPIKey"]["secretRef"],
            "AWSCredentials" => &policy["spec"]["awsCredentials"]["credentialsFile"]["secretRef"],
            other => panic!("unexpected type {other}"),
        };
        assert!(secret_ref.get("namespace").is_none(), "{}", w.backend);
        let secret_name = secret_ref["name"].as_str().unwrap();
        let (path, secret) = objs
            .get(&("Secret".to_owned(), secret_name.to_owned()))
            .unwrap_or_else(|| panic!("{}: Secret {secret_name} missing", w.backend));
        assert!(path.ends_with(".sops.yaml"), "{path}");
        let data = secret["stringData"].as_object().unwrap();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            vec![key],
            "{}: the key the controller reads",
            w.backend
        );
    }
    // Entra ID: tenant and client id in the policy, in plain sight (they are not secrets).
    let entra = policy_of(&objs, "azure-entra").unwrap();
    assert_eq!(
        entra["spec"]["azureCredentials"]["tenantID"],
        "72f988bf-86f1-41af-91ab-2d7cd011db47"
    );
    assert_eq!(
        entra["spec"]["azureCredentials"]["clientID"],
        "0b5e1d2c-3f4a-4b6c-8d9e-a1b2c3d4e5f6"
    );
    // Bedrock: the region is the policy's, and the credentials file has the default profile.
    let bedrock = policy_of(&objs, "bedrock-us").unwrap();
    assert_eq!(bedrock["spec"]["awsCredentials"]["region"], "us-east-1");
    let creds = get(&objs, "Secret", "bedrock-us-credentials")["stringData"]["credentials"]
        .as_str()
        .unwrap();
    assert_eq!(
        creds,
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    );
}

#[test]
fn provider_secrets_live_only_in_sops_files() {
    let (_, r) = render_with_ai(PROVIDERS_AI);
    for secret in [
        "fake-entra-client-secret",
        "sk-fake-openai-key",
        "sk-ant-fake-anthropic-key",
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ] {
        let holders: Vec<&String> = r
            .files
            .iter()
            .filter(|(_, f)| String::from_utf8_lossy(&f.contents).contains(secret))
            .map(|(p, _)| p)
            .collect();
        assert!(!holders.is_empty(), "{secret} is rendered nowhere");
        for p in holders {
            assert!(p.ends_with(".sops.yaml"), "{secret} is in {p}");
        }
    }
}

/// (model, [(backend, priority, modelNameOverride)]) of every AIGatewayRoute rule.
fn routes(r: &Rendered) -> BTreeMap<String, Vec<(String, i64, Option<String>)>> {
    let objs = objects(r);
    let mut out = BTreeMap::new();
    for ((kind, _), (_, doc)) in &objs {
        if kind != "AIGatewayRoute" {
            continue;
        }
        for rule in doc["spec"]["rules"].as_array().unwrap() {
            let model = rule["matches"][0]["headers"][0]["value"]
                .as_str()
                .unwrap()
                .to_owned();
            let backends = rule["backendRefs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    (
                        b["name"].as_str().unwrap().to_owned(),
                        b["priority"].as_i64().unwrap(),
                        b["modelNameOverride"].as_str().map(str::to_owned),
                    )
                })
                .collect();
            out.insert(model, backends);
        }
    }
    out
}

fn b(name: &str, priority: i64, over: Option<&str>) -> (String, i64, Option<String>) {
    (name.to_owned(), priority, over.map(str::to_owned))
}

#[test]
fn failover_across_providers_follows_priority_then_list_order() {
    let (_, r) = render_with_ai(PROVIDERS_AI);
    let table = routes(&r);
    // Azure deployments come before OpenAI backends at equal priority.
    assert_eq!(
        table["gpt-4o"],
        vec![b("azure-eastus", 0, None), b("openai-openai", 1, None)]
    );
    assert_eq!(
        table["fast"],
        vec![b("openai-openai", 0, Some("gpt-4o-mini"))]
    );
    assert_eq!(
        table["llama-3.2-1b"],
        vec![b(
            "bedrock-us",
            0,
            Some("us.meta.llama3-2-1b-instruct-v1:0")
        )]
    );
    assert_eq!(
        table["o3-mini"],
        vec![b("azure-entra", 0, Some("o3-mini-prod"))]
    );
    // A lower `priority` on the OpenAI entry puts it first.
    let reordered = PROVIDERS_AI.replace(
        "    api_key: \"sk-fake-openai-key\"\n",
        "    api_key: \"sk-fake-openai-key\"\n    priority: 0\n",
    );
    let reordered = reordered.replace(
        "    api_key: \"fake-azure-api-key\"\n",
        "    api_key: \"fake-azure-api-key\"\n    priority: 5\n",
    );
    assert_ne!(reordered, PROVIDERS_AI);
    let (_, r2) = render_with_ai(&reordered);
    assert_eq!(
        routes(&r2)["gpt-4o"],
        vec![b("openai-openai", 0, None), b("azure-eastus", 1, None)]
    );
    // The failover policy targets the route and retries once (two backends).
    let objs = objects(&r);
    let fo = get(&objs, "BackendTrafficPolicy", "azure-openai-failover");
    assert_eq!(fo["spec"]["retry"]["numRetries"], 1);
    assert_eq!(fo["spec"]["targetRefs"][0]["name"], "azure-openai");
    // No Anthropic chain: no 529 in the retried status codes.
    let codes = fo["spec"]["retry"]["retryOn"]["httpStatusCodes"]
        .as_array()
        .unwrap();
    assert!(!codes.iter().any(|c| c == 529));
}

#[test]
fn anthropic_failover_also_retries_on_overloaded() {
    let ai = "ai_gateway_enabled: true
ai_gateway_anthropic_backends:
  - name: \"team-a\"
    api_key: \"sk-ant-fake-a\"
    models: [\"claude-sonnet-4-5\"]
  - name: \"team-b\"
    api_key: \"sk-ant-fake-b\"
    models: [\"claude-sonnet-4-5\"]
ai_gateway_client_keys:
  - name: \"app\"
    key: \"fake-client-key-app-0001\"
";
    let (_, r) = render_with_ai(ai);
    assert_eq!(
        routes(&r)["claude-sonnet-4-5"],
        vec![
            b("anthropic-team-a", 0, None),
            b("anthropic-team-b", 1, None)
        ]
    );
    let objs = objects(&r);
    let fo = get(&objs, "BackendTrafficPolicy", "azure-openai-failover");
    let codes = fo["spec"]["retry"]["retryOn"]["httpStatusCodes"]
        .as_array()
        .unwrap();
    assert!(codes.iter().any(|c| c == 529), "{codes:?}");
}

/// Client keys and the token budget sit on the routes and the Gateway, not on a provider: every
/// AIServiceBackend is reached only through an AIGatewayRoute the SecurityPolicy targets, behind
/// the Gateway the rate limit targets.
#[test]
fn client_keys_and_rate_limit_cover_every_provider() {
    let (_, r) = render_with_ai(PROVIDERS_AI);
    let objs = objects(&r);
    let sp = get(&objs, "SecurityPolicy", "azure-openai-client-keys");
    let protected: Vec<&str> = sp["spec"]["targetRefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let rl = get(&objs, "BackendTrafficPolicy", "ai-gateway-token-ratelimit");
    assert_eq!(rl["spec"]["targetRefs"][0]["kind"], "Gateway");
    let gateway = rl["spec"]["targetRefs"][0]["name"].as_str().unwrap();
    for ((kind, name), _) in objs.iter() {
        if kind != "AIServiceBackend" {
            continue;
        }
        let routes: Vec<&Value> = objs
            .iter()
            .filter(|((k, _), _)| k == "AIGatewayRoute")
            .map(|(_, (_, d))| d)
            .filter(|d| {
                d["spec"]["rules"].as_array().unwrap().iter().any(|rule| {
                    rule["backendRefs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|b| b["name"] == name.as_str())
                })
            })
            .collect();
        assert!(!routes.is_empty(), "{name} is reached by no route");
        for route in routes {
            let rname = route["metadata"]["name"].as_str().unwrap();
            assert!(
                protected.contains(&rname),
                "{name}: route {rname} has no client keys"
            );
            assert_eq!(route["spec"]["parentRefs"][0]["name"], gateway);
        }
    }
}

/// Without Azure deployments nothing of Azure is rendered, and the routes wait for the provider
/// Kustomizations that exist.
#[test]
fn a_provider_only_config_renders_no_azure_objects() {
    let ai = "ai_gateway_enabled: true
ai_gateway_openai_backends:
  - name: \"vllm\"
    service: {name: \"vllm\", namespace: \"ai\", port: 8000}
    models: [\"qwen2.5\"]
";
    let (_, r) = render_with_ai(ai);
    assert!(
        !r.files
            .keys()
            .any(|p| p.contains("/backends/azure-openai/")),
        "Azure files rendered without deployments"
    );
    assert!(
        !r.files
            .keys()
            .any(|p| p.contains("/backends/openai/app/secret.sops.yaml"))
    );
    let top = common::documents(&r, "kubernetes/apps/ai-gateway/kustomization.yaml");
    let resources: Vec<&str> = top[0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(resources.contains(&"./backends/openai/ks.yaml"));
    assert!(!resources.iter().any(|r| r.contains("azure")));
    let app = common::documents(
        &r,
        "kubernetes/apps/ai-gateway/backends/openai/app/kustomization.yaml",
    );
    assert_eq!(app[0]["resources"], serde_json::json!(["./backend.yaml"]));
    let ks = common::documents(&r, "kubernetes/apps/ai-gateway/routes/ks.yaml");
    let deps: Vec<&str> = ks[0]["spec"]["dependsOn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(
        deps.contains(&"openai") && !deps.contains(&"azure-openai"),
        "{deps:?}"
    );
    // The tree verifies with the pinned schemas (Flux graph, CRDs, cross-resource rules).
    let Some(report) = verify_rendered(&r, "provider-only") else {
        return;
    };
    let errors: Vec<String> = report
        .diagnostics
        .iter()
        .filter(|d| d.severity == schema::Severity::Error && d.code != "verify::sops_plaintext")
        .map(|d| d.render(None))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

fn verify_rendered(r: &Rendered, name: &str) -> Option<verify::Report> {
    let shared = std::env::var_os("CLUSTER_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join("../shared"));
    let dir = shared.join("schemas");
    if !dir.is_dir() {
        assert!(
            std::env::var("REQUIRE_ORACLES").as_deref() != Ok("1"),
            "{} is missing (REQUIRE_ORACLES=1)",
            dir.display()
        );
        eprintln!("SKIP: {} not found; verify did not run", dir.display());
        return None;
    }
    let schemas = verify::SchemaSet::load(&dir).unwrap();
    let tmp = tempfile::Builder::new()
        .prefix(&format!("ai-providers-{name}-"))
        .tempdir()
        .unwrap();
    for (path, file) in &r.files {
        let target = tmp.path().join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, &file.contents).unwrap();
    }
    Some(verify::verify(
        tmp.path(),
        &schemas,
        &verify::VerifyConfig::cluster_template(),
    ))
}
