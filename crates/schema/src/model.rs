//! The typed model, built from checked and defaulted JSON.
//!
//! Required keys are plain `String`s: a `Config` only leaves this crate when validation found no
//! error, so they always hold valid values. Optional keys without a default are `Option`s and
//! reach templates as explicit nulls.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::names;
use crate::spec::{Default as Dflt, Field, Ty};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Cluster {
    pub node_cidr: String,
    pub node_dns_servers: Vec<String>,
    pub node_ntp_servers: Vec<String>,
    pub node_default_gateway: Option<String>,
    pub node_vlan_tag: Option<i64>,
    pub cluster_pod_cidr: String,
    pub cluster_svc_cidr: String,
    pub cluster_api_addr: String,
    pub cluster_api_tls_sans: Option<Vec<String>>,
    pub cluster_gateway_addr: String,
    pub cluster_dns_gateway_addr: String,
    pub repository_name: String,
    pub repository_branch: String,
    pub repository_visibility: String,
    pub cloudflare_domain: String,
    pub cloudflare_token: String,
    pub cloudflare_gateway_addr: String,
    pub cilium_bgp_router_addr: Option<String>,
    pub cilium_bgp_router_asn: Option<i64>,
    pub cilium_bgp_node_asn: Option<i64>,
    pub cilium_loadbalancer_mode: String,
    pub proxmox_api_url: Option<String>,
    pub proxmox_insecure: bool,
    pub proxmox_region: Option<String>,
    pub proxmox_storage: Option<String>,
    pub proxmox_csi_token_id: Option<String>,
    pub proxmox_csi_token_secret: Option<String>,
    pub proxmox_ccm_token_id: Option<String>,
    pub proxmox_ccm_token_secret: Option<String>,
    pub ai_gateway_enabled: bool,
    pub ai_gateway_version: String,
    pub ai_gateway_addr: Option<String>,
    pub ai_gateway_azure_deployments: Vec<AzureDeployment>,
    pub ai_gateway_openai_backends: Vec<OpenAiBackend>,
    pub ai_gateway_anthropic_backends: Vec<AnthropicBackend>,
    pub ai_gateway_bedrock_backends: Vec<BedrockBackend>,
    pub ai_gateway_mcp_enabled: bool,
    pub ai_gateway_mcp_servers: Vec<McpServer>,
    pub ai_gateway_ratelimit_enabled: bool,
    pub ai_gateway_ratelimit_default_limit: i64,
    pub ai_gateway_client_keys: Vec<ClientKey>,
    pub ai_gateway_external: bool,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct AzureDeployment {
    pub name: String,
    pub host: String,
    /// Exactly one of `api_key` and `entra_id` (checked in `providers::rules`).
    pub api_key: Option<String>,
    pub entra_id: Option<EntraId>,
    pub models: Vec<Model>,
    pub api_version: String,
    pub priority: i64,
}

/// A Microsoft Entra ID service principal with a client secret.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct EntraId {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// An OpenAI or OpenAI-compatible endpoint: an external `host` or an in-cluster `service`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct OpenAiBackend {
    pub name: String,
    pub host: Option<String>,
    pub service: Option<ServiceRef>,
    pub api_key: Option<String>,
    pub api_prefix: String,
    pub models: Vec<ProviderModel>,
    pub priority: i64,
}

/// An in-cluster Service spoken to in plain HTTP.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct ServiceRef {
    pub name: String,
    pub namespace: String,
    pub port: i64,
}

impl ServiceRef {
    /// The Service's cluster DNS name (Talos' default cluster domain, as every template assumes).
    pub fn fqdn(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.name, self.namespace)
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct AnthropicBackend {
    pub name: String,
    pub api_key: String,
    pub models: Vec<ProviderModel>,
    pub priority: i64,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct BedrockBackend {
    pub name: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub models: Vec<ProviderModel>,
    pub priority: i64,
}

/// A model of a provider list: `gpt-4o`, or `{name: fast, model: gpt-4o-mini}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ProviderModel {
    Name(String),
    Mapped {
        #[serde(default)]
        name: String,
        #[serde(default)]
        model: String,
    },
}

impl ProviderModel {
    /// The model name clients send.
    pub fn name(&self) -> &str {
        match self {
            ProviderModel::Name(n) | ProviderModel::Mapped { name: n, .. } => n,
        }
    }

    /// The provider's model id (the name clients send unless mapped).
    pub fn upstream(&self) -> &str {
        match self {
            ProviderModel::Name(n) => n,
            ProviderModel::Mapped { model, .. } => model,
        }
    }
}

/// A model as written: `gpt-4o`, or `{name: gpt-4o, deployment: gpt4o-prod}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Model {
    Name(String),
    Mapped {
        // Defaults keep a half-written entry (already reported) from failing the whole model.
        #[serde(default)]
        name: String,
        #[serde(default)]
        deployment: String,
    },
}

impl Model {
    /// The model name clients send.
    pub fn name(&self) -> &str {
        match self {
            Model::Name(n) | Model::Mapped { name: n, .. } => n,
        }
    }

    /// The Azure deployment serving it (the model name unless mapped).
    pub fn deployment(&self) -> &str {
        match self {
            Model::Name(n) => n,
            Model::Mapped { deployment, .. } => deployment,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct McpServer {
    pub name: String,
    pub host: String,
    pub path: String,
    pub api_key: Option<String>,
    pub tool_filter: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct ClientKey {
    pub name: String,
    pub key: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Node {
    pub name: String,
    pub address: String,
    pub controller: bool,
    pub disk: String,
    pub mac_addr: String,
    pub schematic_id: String,
    pub mtu: i64,
    pub secureboot: bool,
    pub encrypt_disk: bool,
    pub kernel_modules: Vec<String>,
}

/// A validated, defaulted configuration: `cluster.yaml` and `nodes.yaml` together.
#[derive(Clone, Debug)]
pub struct Config {
    pub cluster: Cluster,
    pub nodes: Vec<Node>,
}

/// Fills absent keys with their table defaults, recursing into lists of objects.
pub fn apply_defaults(map: &mut Map<String, Json>, fields: &[Field]) {
    for field in fields {
        match map.get_mut(field.name) {
            Some(value) => {
                if let Ty::List {
                    item: Ty::Object(inner),
                    ..
                } = &field.ty
                    && let Json::Array(items) = value
                {
                    for item in items {
                        if let Json::Object(m) = item {
                            apply_defaults(m, inner);
                        }
                    }
                }
            }
            None => {
                let default = match &field.default {
                    Dflt::Null | Dflt::Computed(_) => continue,
                    Dflt::Bool(b) => Json::Bool(*b),
                    Dflt::Int(i) => Json::from(*i),
                    Dflt::Str(s) => Json::String((*s).to_owned()),
                    Dflt::StrList(items) => Json::Array(
                        items
                            .iter()
                            .map(|s| Json::String((*s).to_owned()))
                            .collect(),
                    ),
                    Dflt::EmptyList => Json::Array(Vec::new()),
                };
                map.insert(field.name.to_owned(), default);
            }
        }
    }
}

impl Cluster {
    /// The gateway nodes get when `node_default_gateway` is unset: the first host of
    /// `node_cidr`. Validation treats it like any other address (it must be unique).
    pub fn implicit_gateway(&self) -> Option<String> {
        if self.node_default_gateway.is_some() {
            return None;
        }
        crate::net::Cidr::parse(&self.node_cidr)
            .ok()
            .and_then(|n| n.nth(1))
            .map(|ip| ip.to_string())
    }
}

impl Config {
    pub fn bgp_enabled(&self) -> bool {
        let c = &self.cluster;
        c.cilium_bgp_router_addr.is_some()
            && c.cilium_bgp_router_asn.is_some()
            && c.cilium_bgp_node_asn.is_some()
    }

    pub fn proxmox_csi_enabled(&self) -> bool {
        self.cluster.proxmox_csi_token_id.is_some()
    }

    pub fn proxmox_ccm_enabled(&self) -> bool {
        self.cluster.proxmox_ccm_token_id.is_some()
    }

    /// The values templates see: every key of both files (optional ones as explicit nulls),
    /// the defaults, and a few derived values so templates need no logic of their own.
    pub fn context(&self) -> Json {
        let mut map = match serde_json::to_value(&self.cluster) {
            Ok(Json::Object(m)) => m,
            _ => Map::new(),
        };
        let c = &self.cluster;
        let default_gateway = c
            .node_default_gateway
            .clone()
            .or_else(|| c.implicit_gateway());
        map.insert(
            "node_default_gateway".into(),
            default_gateway.map_or(Json::Null, Json::String),
        );
        map.insert(
            "nodes".into(),
            serde_json::to_value(&self.nodes).unwrap_or(Json::Null),
        );
        map.insert("cilium_bgp_enabled".into(), Json::Bool(self.bgp_enabled()));
        map.insert("spegel_enabled".into(), Json::Bool(self.nodes.len() > 1));
        map.insert(
            "controller_count".into(),
            Json::from(self.nodes.iter().filter(|n| n.controller).count()),
        );
        map.insert(
            "proxmox_csi_enabled".into(),
            Json::Bool(self.proxmox_csi_enabled()),
        );
        map.insert(
            "proxmox_ccm_enabled".into(),
            Json::Bool(self.proxmox_ccm_enabled()),
        );
        map.insert(
            "ai_gateway_namespace".into(),
            Json::String(names::AI_NAMESPACE.to_owned()),
        );
        map.insert("ai_gateway".into(), ai_context(self));
        Json::Object(map)
    }
}

/// Pre-computed names and routing for the AI Gateway templates.
fn ai_context(config: &Config) -> Json {
    let c = &config.cluster;
    let deployments: Vec<Json> = c
        .ai_gateway_azure_deployments
        .iter()
        .map(|d| {
            // API-key deployments keep the names (and objects) they had before Entra ID.
            let (security_policy, secret) = match d.entra_id {
                Some(_) => (names::azure_entra(&d.name), names::azure_entra(&d.name)),
                None => (
                    names::azure_security_policy(&d.name),
                    names::azure_secret(&d.name),
                ),
            };
            serde_json::json!({
                "name": d.name,
                "host": d.host,
                "api_key": d.api_key,
                "entra_id": d.entra_id,
                "api_version": d.api_version,
                "backend": names::azure_backend(&d.name),
                "tls_policy": names::tls_policy(&names::azure_backend(&d.name)),
                "security_policy": security_policy,
                "secret": secret,
                "models": d.models.iter().map(|m| serde_json::json!({"name": m.name(), "deployment": m.deployment()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let upstreams = crate::providers::upstreams(c);
    let model_routes = names::model_routes(&upstreams);
    let route_json = |r: &names::ModelRoute| {
        serde_json::json!({
            "model": r.model,
            "backends": r.backends.iter().map(|b| serde_json::json!({
                "backend": b.backend,
                "priority": b.priority,
                "model_override": b.model_override,
                "azure": b.backend.starts_with("azure-"),
            })).collect::<Vec<_>>(),
        })
    };
    let routes: Vec<Json> = model_routes.iter().map(route_json).collect();
    // One AIGatewayRoute per group of at most 15 models (see names::ROUTE_RULES_MAX).
    let route_groups: Vec<Json> = names::route_groups(&model_routes)
        .into_iter()
        .map(|(name, rules)| {
            serde_json::json!({
                "name": name,
                "routes": rules.iter().map(route_json).collect::<Vec<_>>(),
                "failover": rules.iter().any(|r| r.backends.len() > 1),
            })
        })
        .collect();
    let mcp: Vec<Json> = c
        .ai_gateway_mcp_servers
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "host": s.host,
                "path": s.path,
                "api_key": s.api_key,
                "tool_filter": s.tool_filter,
                "backend": names::mcp_backend(&s.name),
                "tls_policy": names::tls_policy(&names::mcp_backend(&s.name)),
                "secret": s.api_key.as_ref().map(|_| names::mcp_secret(&s.name)),
            })
        })
        .collect();
    // Anthropic answers 529 when it is overloaded: worth failing over on, where a chain holds an
    // Anthropic backend.
    let anthropic_failover = model_routes.iter().any(|r| {
        r.backends.len() > 1
            && r.backends
                .iter()
                .any(|b| b.backend.starts_with("anthropic-"))
    });
    serde_json::json!({
        "namespace": names::AI_NAMESPACE,
        "gateway": names::AI_GATEWAY,
        "hostname_prefix": names::AI_HOSTNAME_PREFIX,
        "deployments": deployments,
        "openai": openai_context(c),
        "anthropic": anthropic_context(c),
        "bedrock": bedrock_context(c),
        "anthropic_failover": anthropic_failover,
        "routes": routes,
        "route_groups": route_groups,
        "mcp_servers": mcp,
        "client_keys_secret": names::CLIENT_KEYS_SECRET,
        "has_client_keys": !c.ai_gateway_client_keys.is_empty(),
        "dedicated_address": c.ai_gateway_addr.is_some(),
    })
}

fn openai_context(c: &Cluster) -> Vec<Json> {
    const KEY: &str = "ai_gateway_openai_backends";
    c.ai_gateway_openai_backends
        .iter()
        .map(|b| {
            let backend = names::provider_backend(KEY, &b.name);
            // An external host is spoken to in HTTPS on 443; an in-cluster Service in plain HTTP.
            let (host, port, tls) = match (&b.host, &b.service) {
                (Some(h), _) => (h.clone(), 443, true),
                (None, Some(svc)) => (svc.fqdn(), svc.port, false),
                (None, None) => (String::new(), 0, false),
            };
            serde_json::json!({
                "name": b.name,
                "backend": backend,
                "tls_policy": names::tls_policy(&backend),
                "host": host,
                "port": port,
                "tls": tls,
                "service": b.service,
                "api_prefix": b.api_prefix,
                "api_key": b.api_key,
                "credentials": b.api_key.as_ref().map(|_| names::provider_credentials(KEY, &b.name)),
            })
        })
        .collect()
}

fn anthropic_context(c: &Cluster) -> Vec<Json> {
    const KEY: &str = "ai_gateway_anthropic_backends";
    c.ai_gateway_anthropic_backends
        .iter()
        .map(|b| {
            let backend = names::provider_backend(KEY, &b.name);
            serde_json::json!({
                "name": b.name,
                "backend": backend,
                "tls_policy": names::tls_policy(&backend),
                "host": names::ANTHROPIC_HOST,
                "api_key": b.api_key,
                "credentials": names::provider_credentials(KEY, &b.name),
            })
        })
        .collect()
}

fn bedrock_context(c: &Cluster) -> Vec<Json> {
    const KEY: &str = "ai_gateway_bedrock_backends";
    c.ai_gateway_bedrock_backends
        .iter()
        .map(|b| {
            let backend = names::provider_backend(KEY, &b.name);
            serde_json::json!({
                "name": b.name,
                "backend": backend,
                "tls_policy": names::tls_policy(&backend),
                "host": names::bedrock_host(&b.region),
                "region": b.region,
                "access_key_id": b.access_key_id,
                "secret_access_key": b.secret_access_key,
                "credentials": names::provider_credentials(KEY, &b.name),
            })
        })
        .collect()
}
