//! What the rendered AI Gateway objects promise, extracted from a [`Tree`]: which model goes to
//! which Azure host, which MCP backends with which tool selectors, which token budget.
//! The traffic checks compare what the cluster does against this, and the harness points the
//! mocks at the hosts named here.

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

/// One backendRef of a model's rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTarget {
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
    /// The `Distinct` client header (e.g. `x-user-id`).
    pub header: String,
    pub limit: u64,
    pub unit: String,
    pub cost: CostType,
}

/// The rendered AI Gateway, as far as the checks need it.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayView {
    /// Namespace of the AI Gateway objects.
    pub namespace: String,
    /// `(namespace, name)` of the Gateway the AIGatewayRoutes attach to.
    pub gateway: (String, String),
    pub azure: Vec<AzureBackend>,
    /// Model → its backends in rule order.
    pub models: BTreeMap<String, Vec<ModelTarget>>,
    pub mcp: Vec<McpRoute>,
    pub budget: Vec<BudgetRule>,
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
            let target = s(&doc.value, "/spec/backendRef/name");
            let host = hosts.get(target).cloned().ok_or_else(|| {
                format!(
                    "{}: AIServiceBackend `{}` names Backend `{target}`, not rendered",
                    doc.file,
                    doc.name()
                )
            })?;
            azure.push(AzureBackend {
                name: doc.name().to_owned(),
                host,
                api_version: s(&doc.value, "/spec/schema/version").to_owned(),
            });
        }

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
            mcp.push(McpRoute {
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
                budget.push(BudgetRule {
                    policy: doc.name().to_owned(),
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
        Ok(GatewayView {
            namespace,
            gateway,
            azure,
            models,
            mcp,
            budget,
        })
    }

    /// The Azure backend an AIServiceBackend name refers to.
    pub fn azure_backend(&self, name: &str) -> Option<&AzureBackend> {
        self.azure.iter().find(|b| b.name == name)
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

fn strings(value: &Value, pointer: &str) -> Vec<String> {
    arr(value, pointer)
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
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
