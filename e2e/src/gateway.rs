//! What the rendered AI Gateway objects promise, extracted from a [`Tree`]: which model goes to
//! which Azure host, which MCP backends with which tool selectors, which token budget, which
//! client keys guard which routes, which failover policy, and where the gateway listens.
//! The traffic checks compare what the cluster does against this, and the harness points the
//! mocks at the hosts named here.
//!
//! Names are never assumed: the Gateway comes from the AIGatewayRoutes' `parentRefs`, its Envoy
//! Service from the Gateway's EnvoyProxy (`parametersRef` → `envoyService.name`), the policies
//! from their `targetRefs` (the HTTPRoute the controller generates carries the AIGatewayRoute's
//! name).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::rendered::{Document, Tree};

/// The header AIGatewayRoute rules match a model on.
pub const MODEL_HEADER: &str = "x-ai-eg-model";

/// An EG `Backend` FQDN endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Host {
    pub hostname: String,
    pub port: u16,
}

/// One AIServiceBackend of schema `AzureOpenAI`.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureBackend {
    /// The AIServiceBackend name.
    pub name: String,
    pub host: Host,
    /// `spec.schema.version`: the `api-version` query parameter Azure must receive.
    pub api_version: String,
}

/// One AIServiceBackend of schema `OpenAI`, `Anthropic` or `AWSBedrock` (issue 16).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderBackend {
    /// The AIServiceBackend name.
    pub name: String,
    pub wire: crate::mock::Wire,
    pub host: Host,
    /// Whether a BackendTLSPolicy targets its Backend (else plain HTTP: an in-cluster Service).
    pub tls: bool,
    /// OpenAI: the path prefix (`spec.schema.version`, `v1` when unset, as v0.4.0 defaults it).
    pub prefix: String,
    /// The BackendSecurityPolicy type targeting it, if any.
    pub policy: Option<String>,
    /// Bedrock: `awsCredentials.region` of its policy.
    pub region: Option<String>,
}

/// One backendRef of a model's rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTarget {
    /// The AIGatewayRoute whose rule names this backend.
    pub route: String,
    pub backend: String,
    pub priority: i64,
    /// `modelNameOverride`: the Azure deployment name, when it differs from the model.
    pub deployment: Option<String>,
}

/// An MCPRoute backendRef's tool selector.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolSelector {
    All,
    Include(Vec<String>),
    IncludeRegex(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct McpBackend {
    /// backendRef name: the tool-name prefix.
    pub name: String,
    pub host: Host,
    pub path: String,
    pub selector: ToolSelector,
    /// Header the gateway puts the upstream key in (`Authorization` → `Bearer <key>`).
    pub api_key_header: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct McpRoute {
    pub name: String,
    pub namespace: String,
    pub path: String,
    pub backends: Vec<McpBackend>,
    /// `spec.securityPolicy.apiKeyAuth`: client keys on the MCP endpoint.
    pub client_auth: Option<ClientAuth>,
}

/// What a budget rule charges per response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostType {
    InputToken,
    OutputToken,
    TotalToken,
    CachedInputToken,
    /// A CEL expression: the harness cannot predict it.
    Cel,
}

/// One global rate-limit rule of a BackendTrafficPolicy.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRule {
    pub policy: String,
    /// `Kind/name` of the policy's first target (e.g. `Gateway/ai-gateway`).
    pub target: String,
    /// The `Distinct` client header (e.g. `x-user-id`).
    pub header: String,
    pub limit: u64,
    pub unit: String,
    pub cost: CostType,
    /// `shared: true`: one counter per client across every route the policy covers; otherwise
    /// each route counts on its own.
    pub shared: bool,
}

/// Client keys (Envoy Gateway `apiKeyAuth`) in front of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientAuth {
    /// `Kind/name` of the object that carries the check (a SecurityPolicy, or the MCPRoute).
    pub policy: String,
    /// The Secret holding one key per client, named after the client.
    pub secret: String,
    /// The header the key is read from (`Authorization`: sent as `Bearer <key>`).
    pub header: String,
    /// `forwardClientIDHeader`: the header the gateway sets to the client's name.
    pub client_id_header: Option<String>,
    /// `sanitize`: the key header is removed before anything is forwarded.
    pub sanitize: bool,
    /// Client names: the keys of the Secret's `stringData`/`data` (SOPS leaves them readable).
    /// Empty when the Secret is not in the tree.
    pub clients: Vec<String>,
}

/// A BackendTrafficPolicy that retries on the next priority and ejects failing upstreams.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverPolicy {
    pub policy: String,
    /// The HTTPRoute it targets (the one generated for the AIGatewayRoute of the same name).
    pub route: String,
    pub num_retries: u64,
    /// `numAttemptsPerPriority`: with 1, each retry goes to the next priority.
    pub attempts_per_priority: Option<u64>,
    /// `retryOn.triggers`, e.g. `connect-failure`, `reset`, `retriable-status-codes`.
    pub triggers: Vec<String>,
    pub status_codes: Vec<u64>,
    /// Passive health checks (outlier ejection) are configured.
    pub passive_ejection: bool,
    /// `mergeType` (e.g. `StrategicMerge`): merged with the Gateway-level policy, not replacing it.
    pub merge_type: Option<String>,
}

impl FailoverPolicy {
    /// A connect failure (a stopped upstream) is retried on the next priority within the same
    /// client request, so the client never sees the failure.
    pub fn retries_connect_failures_on_next_priority(&self) -> bool {
        self.num_retries > 0
            && self.attempts_per_priority == Some(1)
            && self.triggers.iter().any(|t| t == "connect-failure")
    }
}

/// The Gateway's plain-HTTP listener (the one the harness can reach without a certificate).
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub name: String,
    pub port: u16,
    /// `hostname`, if the listener restricts it.
    pub hostname: Option<String>,
}

/// The Envoy Service of the Gateway, as its EnvoyProxy pins it.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvoyService {
    pub namespace: String,
    /// `envoyService.name`; `None` when not pinned (Envoy Gateway then picks the name).
    pub name: Option<String>,
    /// `envoyService.type` (Envoy Gateway's default is `LoadBalancer`).
    pub service_type: String,
}

/// The rendered AI Gateway, as far as the checks need it.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayView {
    /// Namespace of the AI Gateway objects.
    pub namespace: String,
    /// `(namespace, name)` of the Gateway the AIGatewayRoutes attach to.
    pub gateway: (String, String),
    /// Its first plain-HTTP listener, if it has one.
    pub listener: Option<Listener>,
    /// Its Envoy Service, from the EnvoyProxy its `infrastructure.parametersRef` names.
    pub service: Option<EnvoyService>,
    /// AIGatewayRoute names (each also names the HTTPRoute the controller generates).
    pub routes: Vec<String>,
    pub azure: Vec<AzureBackend>,
    pub providers: Vec<ProviderBackend>,
    /// Model → its backends in rule order.
    pub models: BTreeMap<String, Vec<ModelTarget>>,
    pub mcp: Vec<McpRoute>,
    pub budget: Vec<BudgetRule>,
    /// Client keys on the model routes (a SecurityPolicy targeting a generated HTTPRoute or
    /// the Gateway).
    pub client_auth: Option<ClientAuth>,
    /// Failover policies on the model routes.
    pub failover: Vec<FailoverPolicy>,
}

fn s<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn arr<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

impl GatewayView {
    /// Extract the view; errors name the file and what is missing.
    pub fn from_tree(tree: &Tree) -> Result<GatewayView, String> {
        let routes: Vec<&Document> = tree.of_kind("AIGatewayRoute").collect();
        let first = routes.first().ok_or(
            "the rendered tree has no AIGatewayRoute: is `ai_gateway_enabled: true` in the config?",
        )?;
        let namespace = tree
            .effective_namespace(first)
            .ok_or_else(|| format!("{}: no namespace", first.file))?;
        let parent = arr(&first.value, "/spec/parentRefs")
            .first()
            .ok_or_else(|| {
                format!(
                    "{}: AIGatewayRoute `{}` has no parentRefs",
                    first.file,
                    first.name()
                )
            })?;
        let gateway = (
            parent
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or(&namespace)
                .to_owned(),
            s(parent, "/name").to_owned(),
        );

        let hosts = backend_hosts(tree);
        let mut azure = Vec::new();
        for doc in tree.of_kind("AIServiceBackend") {
            if s(&doc.value, "/spec/schema/name") != "AzureOpenAI" {
                continue;
            }
            let host = backend_host(doc, &hosts)?;
            azure.push(AzureBackend {
                name: doc.name().to_owned(),
                host,
                api_version: s(&doc.value, "/spec/schema/version").to_owned(),
            });
        }

        let providers = provider_backends(tree, &hosts)?;

        let mut models: BTreeMap<String, Vec<ModelTarget>> = BTreeMap::new();
        for route in &routes {
            for rule in arr(&route.value, "/spec/rules") {
                let model = arr(rule, "/matches")
                    .iter()
                    .flat_map(|m| arr(m, "/headers"))
                    .find(|h| {
                        s(h, "/name").eq_ignore_ascii_case(MODEL_HEADER)
                            && s(h, "/type") != "RegularExpression"
                    })
                    .map(|h| s(h, "/value").to_owned());
                let Some(model) = model else { continue };
                let targets = models.entry(model).or_default();
                for backend_ref in arr(rule, "/backendRefs") {
                    targets.push(ModelTarget {
                        route: route.name().to_owned(),
                        backend: s(backend_ref, "/name").to_owned(),
                        priority: backend_ref
                            .get("priority")
                            .and_then(Value::as_i64)
                            .unwrap_or(0),
                        deployment: backend_ref
                            .get("modelNameOverride")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    });
                }
            }
        }

        let mut mcp = Vec::new();
        for doc in tree.of_kind("MCPRoute") {
            let mut backends = Vec::new();
            for backend_ref in arr(&doc.value, "/spec/backendRefs") {
                let name = s(backend_ref, "/name").to_owned();
                let host = hosts.get(name.as_str()).cloned().ok_or_else(|| {
                    format!(
                        "{}: MCPRoute backendRef `{name}` names no rendered Backend",
                        doc.file
                    )
                })?;
                let selector = match backend_ref.get("toolSelector") {
                    None => ToolSelector::All,
                    Some(sel) if sel.get("includeRegex").is_some() => {
                        ToolSelector::IncludeRegex(strings(sel, "/includeRegex"))
                    }
                    Some(sel) => ToolSelector::Include(strings(sel, "/include")),
                };
                let api_key_header = backend_ref
                    .pointer("/securityPolicy/apiKey")
                    .map(|api_key| {
                        api_key
                            .get("header")
                            .and_then(Value::as_str)
                            .unwrap_or("Authorization")
                            .to_owned()
                    });
                backends.push(McpBackend {
                    name,
                    host,
                    path: backend_ref
                        .get("path")
                        .and_then(Value::as_str)
                        .unwrap_or("/mcp")
                        .to_owned(),
                    selector,
                    api_key_header,
                });
            }
            let client_auth = doc
                .value
                .pointer("/spec/securityPolicy/apiKeyAuth")
                .map(|auth| {
                    api_key_auth(tree, &namespace, format!("MCPRoute/{}", doc.name()), auth)
                });
            mcp.push(McpRoute {
                client_auth,
                name: doc.name().to_owned(),
                namespace: tree
                    .effective_namespace(doc)
                    .unwrap_or_else(|| namespace.clone()),
                path: doc
                    .value
                    .pointer("/spec/path")
                    .and_then(Value::as_str)
                    .unwrap_or("/mcp")
                    .to_owned(),
                backends,
            });
        }

        let cost_types: BTreeMap<String, CostType> = routes
            .iter()
            .flat_map(|route| arr(&route.value, "/spec/llmRequestCosts"))
            .map(|cost| {
                let kind = match s(cost, "/type") {
                    "InputToken" => CostType::InputToken,
                    "OutputToken" => CostType::OutputToken,
                    "TotalToken" => CostType::TotalToken,
                    "CachedInputToken" => CostType::CachedInputToken,
                    _ => CostType::Cel,
                };
                (s(cost, "/metadataKey").to_owned(), kind)
            })
            .collect();
        let mut budget = Vec::new();
        for doc in tree.of_kind("BackendTrafficPolicy") {
            for rule in arr(&doc.value, "/spec/rateLimit/global/rules") {
                let header = arr(rule, "/clientSelectors")
                    .iter()
                    .flat_map(|sel| arr(sel, "/headers"))
                    .find(|h| s(h, "/type") == "Distinct")
                    .map(|h| s(h, "/name").to_owned());
                let key = s(rule, "/cost/response/metadata/key");
                let (Some(header), false) = (header, key.is_empty()) else {
                    continue;
                };
                let cost = *cost_types.get(key).ok_or_else(|| {
                    format!("{}: rate-limit rule charges `{key}`, which no AIGatewayRoute llmRequestCosts defines", doc.file)
                })?;
                let target = arr(&doc.value, "/spec/targetRefs")
                    .first()
                    .map(|t| format!("{}/{}", s(t, "/kind"), s(t, "/name")))
                    .unwrap_or_default();
                budget.push(BudgetRule {
                    policy: doc.name().to_owned(),
                    target,
                    shared: rule.get("shared").and_then(Value::as_bool) == Some(true),
                    header,
                    limit: rule
                        .pointer("/limit/requests")
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                    unit: s(rule, "/limit/unit").to_owned(),
                    cost,
                });
            }
        }
        let route_names: Vec<String> = routes.iter().map(|r| r.name().to_owned()).collect();
        // A policy in the AI namespace that targets a generated HTTPRoute (or the Gateway).
        let targets_routes = |doc: &Document, gateway_too: bool| {
            tree.effective_namespace(doc).as_deref() == Some(namespace.as_str())
                && arr(&doc.value, "/spec/targetRefs").iter().any(|t| {
                    let name = s(t, "/name");
                    match s(t, "/kind") {
                        "HTTPRoute" => route_names.iter().any(|r| r == name),
                        "Gateway" => gateway_too && name == gateway.1,
                        _ => false,
                    }
                })
        };
        let client_auth = tree
            .of_kind("SecurityPolicy")
            .filter(|doc| targets_routes(doc, true))
            .find_map(|doc| {
                doc.value.pointer("/spec/apiKeyAuth").map(|auth| {
                    api_key_auth(
                        tree,
                        &namespace,
                        format!("SecurityPolicy/{}", doc.name()),
                        auth,
                    )
                })
            });
        let failover = tree
            .of_kind("BackendTrafficPolicy")
            .filter(|doc| targets_routes(doc, false) && doc.value.pointer("/spec/retry").is_some())
            .map(|doc| {
                let v = &doc.value;
                FailoverPolicy {
                    policy: doc.name().to_owned(),
                    route: arr(v, "/spec/targetRefs")
                        .iter()
                        .find(|t| s(t, "/kind") == "HTTPRoute")
                        .map(|t| s(t, "/name").to_owned())
                        .unwrap_or_default(),
                    num_retries: v
                        .pointer("/spec/retry/numRetries")
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                    attempts_per_priority: v
                        .pointer("/spec/retry/numAttemptsPerPriority")
                        .and_then(Value::as_u64),
                    triggers: strings(v, "/spec/retry/retryOn/triggers"),
                    status_codes: arr(v, "/spec/retry/retryOn/httpStatusCodes")
                        .iter()
                        .filter_map(Value::as_u64)
                        .collect(),
                    passive_ejection: v.pointer("/spec/healthCheck/passive").is_some(),
                    merge_type: v
                        .pointer("/spec/mergeType")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }
            })
            .collect();

        let gateway_doc = tree.of_kind("Gateway").find(|doc| {
            doc.name() == gateway.1
                && tree.effective_namespace(doc).as_deref() == Some(gateway.0.as_str())
        });
        let listener = gateway_doc.and_then(|doc| {
            arr(&doc.value, "/spec/listeners")
                .iter()
                .find(|l| s(l, "/protocol") == "HTTP")
                .map(|l| Listener {
                    name: s(l, "/name").to_owned(),
                    port: l
                        .get("port")
                        .and_then(Value::as_u64)
                        .and_then(|p| u16::try_from(p).ok())
                        .unwrap_or(80),
                    hostname: l.get("hostname").and_then(Value::as_str).map(str::to_owned),
                })
        });
        let service = gateway_doc.and_then(|doc| {
            let params = doc.value.pointer("/spec/infrastructure/parametersRef")?;
            if s(params, "/kind") != "EnvoyProxy" {
                return None;
            }
            let proxy = tree.of_kind("EnvoyProxy").find(|p| {
                p.name() == s(params, "/name")
                    && tree.effective_namespace(p).as_deref() == Some(gateway.0.as_str())
            })?;
            let svc = proxy
                .value
                .pointer("/spec/provider/kubernetes/envoyService");
            Some(EnvoyService {
                namespace: gateway.0.clone(),
                name: svc
                    .and_then(|v| v.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                service_type: svc
                    .and_then(|v| v.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("LoadBalancer")
                    .to_owned(),
            })
        });

        Ok(GatewayView {
            namespace,
            gateway,
            listener,
            service,
            routes: route_names,
            azure,
            providers,
            models,
            mcp,
            budget,
            client_auth,
            failover,
        })
    }

    /// The Azure backend an AIServiceBackend name refers to.
    pub fn azure_backend(&self, name: &str) -> Option<&AzureBackend> {
        self.azure.iter().find(|b| b.name == name)
    }

    /// The provider backend an AIServiceBackend name refers to.
    pub fn provider_backend(&self, name: &str) -> Option<&ProviderBackend> {
        self.providers.iter().find(|b| b.name == name)
    }

    /// The failover policy on the HTTPRoute generated for AIGatewayRoute `route`, if any.
    pub fn failover_policy(&self, route: &str) -> Option<&FailoverPolicy> {
        self.failover.iter().find(|p| p.route == route)
    }

    /// Models with at least two distinct backends (failover candidates).
    pub fn failover_models(&self) -> Vec<(&str, &[ModelTarget])> {
        self.models
            .iter()
            .filter(|(_, targets)| {
                let mut names: Vec<&str> = targets.iter().map(|t| t.backend.as_str()).collect();
                names.dedup();
                names.len() >= 2
            })
            .map(|(model, targets)| (model.as_str(), targets.as_slice()))
            .collect()
    }
}

/// An Envoy Gateway `apiKeyAuth` block, with the client names of the Secret it reads.
fn api_key_auth(tree: &Tree, namespace: &str, policy: String, auth: &Value) -> ClientAuth {
    let secret = arr(auth, "/credentialRefs")
        .first()
        .map(|r| s(r, "/name").to_owned())
        .unwrap_or_default();
    let header = arr(auth, "/extractFrom")
        .iter()
        .flat_map(|e| arr(e, "/headers"))
        .find_map(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut clients: Vec<String> = tree
        .of_kind("Secret")
        .filter(|doc| {
            doc.name() == secret && tree.effective_namespace(doc).as_deref() == Some(namespace)
        })
        .flat_map(|doc| {
            ["/stringData", "/data"]
                .into_iter()
                .filter_map(|p| doc.value.pointer(p).and_then(Value::as_object))
                .flat_map(|map| map.keys().cloned())
                .collect::<Vec<_>>()
        })
        .collect();
    clients.sort();
    clients.dedup();
    ClientAuth {
        policy,
        secret,
        header,
        client_id_header: auth
            .get("forwardClientIDHeader")
            .and_then(Value::as_str)
            .map(str::to_owned),
        sanitize: auth.get("sanitize").and_then(Value::as_bool) == Some(true),
        clients,
    }
}

fn strings(value: &Value, pointer: &str) -> Vec<String> {
    arr(value, pointer)
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The OpenAI, Anthropic and Bedrock AIServiceBackends, with their Backend, TLS and policy.
fn provider_backends(
    tree: &Tree,
    hosts: &BTreeMap<&str, Host>,
) -> Result<Vec<ProviderBackend>, String> {
    use crate::mock::Wire;
    let tls_targets: Vec<&str> = tree
        .of_kind("BackendTLSPolicy")
        .flat_map(|doc| {
            arr(&doc.value, "/spec/targetRefs")
                .iter()
                .map(|t| s(t, "/name"))
        })
        .collect();
    let mut out = Vec::new();
    for doc in tree.of_kind("AIServiceBackend") {
        let wire = match s(&doc.value, "/spec/schema/name") {
            "OpenAI" => Wire::OpenAi,
            "Anthropic" => Wire::Anthropic,
            "AWSBedrock" => Wire::Bedrock,
            _ => continue,
        };
        let target = s(&doc.value, "/spec/backendRef/name");
        let host = backend_host(doc, hosts)?;
        let policy = tree.of_kind("BackendSecurityPolicy").find(|p| {
            arr(&p.value, "/spec/targetRefs")
                .iter()
                .any(|t| s(t, "/name") == doc.name())
        });
        let version = s(&doc.value, "/spec/schema/version");
        out.push(ProviderBackend {
            name: doc.name().to_owned(),
            wire,
            host,
            tls: tls_targets.contains(&target),
            prefix: if version.is_empty() { "v1" } else { version }.to_owned(),
            policy: policy.map(|p| s(&p.value, "/spec/type").to_owned()),
            region: policy
                .map(|p| s(&p.value, "/spec/awsCredentials/region"))
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
        });
    }
    Ok(out)
}

/// The host of the EG `Backend` an AIServiceBackend `doc` names.
fn backend_host(doc: &Document, hosts: &BTreeMap<&str, Host>) -> Result<Host, String> {
    let target = s(&doc.value, "/spec/backendRef/name");
    hosts.get(target).cloned().ok_or_else(|| {
        format!(
            "{}: AIServiceBackend `{}` names Backend `{target}`, not rendered",
            doc.file,
            doc.name()
        )
    })
}

/// EG `Backend` name → its first FQDN endpoint.
fn backend_hosts(tree: &Tree) -> BTreeMap<&str, Host> {
    tree.of_kind("Backend")
        .filter(|doc| doc.group() == "gateway.envoyproxy.io")
        .filter_map(|doc| {
            let endpoint = arr(&doc.value, "/spec/endpoints")
                .iter()
                .find_map(|e| e.get("fqdn"))?;
            let port = endpoint
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())?;
            Some((
                doc.name(),
                Host {
                    hostname: s(endpoint, "/hostname").to_owned(),
                    port,
                },
            ))
        })
        .collect()
}
