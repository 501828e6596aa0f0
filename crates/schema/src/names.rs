//! Names of the objects generated for the AI Gateway.
//!
//! One place decides them, so the validator can check that they fit Kubernetes limits and do not
//! collide, and the templates read them from the context instead of rebuilding them.

use crate::providers::Upstream;

pub const AI_NAMESPACE: &str = "envoy-ai-gateway-system";
/// The Gateway; in GatewayNamespace mode Envoy Gateway names its Service after it.
pub const AI_GATEWAY: &str = "ai-gateway";
/// The endpoint is `aiops.<domain>`.
pub const AI_HOSTNAME_PREFIX: &str = "aiops";
pub const CLIENT_KEYS_SECRET: &str = "ai-gateway-client-keys";
/// Anthropic's API host.
pub const ANTHROPIC_HOST: &str = "api.anthropic.com";

/// Bedrock's runtime endpoint in `region`: the host v0.4.0 signs requests for (SigV4, service
/// `bedrock`), so the Backend must connect exactly there.
pub fn bedrock_host(region: &str) -> String {
    format!("bedrock-runtime.{region}.amazonaws.com")
}

/// Object names must be DNS labels: Services and label values allow at most 63 characters.
pub const MAX_NAME: usize = 63;

/// The Envoy Gateway `Backend` and the `AIServiceBackend` of an Azure deployment.
pub fn azure_backend(name: &str) -> String {
    format!("azure-{name}")
}

pub fn azure_security_policy(name: &str) -> String {
    format!("azure-{name}-apikey")
}

pub fn azure_secret(name: &str) -> String {
    format!("azure-{name}-apikey")
}

/// The Secret and BackendSecurityPolicy of an Azure deployment authenticating with Entra ID.
/// (The controller keeps the access tokens it obtains in a Secret of its own,
/// `ai-eg-bsp-<policy name>`.)
pub fn azure_entra(name: &str) -> String {
    format!("azure-{name}-entra")
}

/// The `Backend` and `AIServiceBackend` of an entry of a provider list (`openai-<name>`,
/// `anthropic-<name>`, `bedrock-<name>`).
pub fn provider_backend(list_key: &str, name: &str) -> String {
    format!("{}-{name}", provider_prefix(list_key))
}

fn provider_prefix(list_key: &str) -> &'static str {
    match list_key {
        "ai_gateway_openai_backends" => "openai",
        "ai_gateway_anthropic_backends" => "anthropic",
        _ => "bedrock",
    }
}

/// The BackendSecurityPolicy and Secret of a provider entry: `<backend>-apikey`, or
/// `bedrock-<name>-credentials` (an AWS credentials file).
pub fn provider_credentials(list_key: &str, name: &str) -> String {
    let backend = provider_backend(list_key, name);
    if list_key == "ai_gateway_bedrock_backends" {
        format!("{backend}-credentials")
    } else {
        format!("{backend}-apikey")
    }
}

/// Every generated name for one provider entry, for length checks and collisions.
pub fn provider_names(list_key: &str, name: &str) -> Vec<String> {
    let backend = provider_backend(list_key, name);
    vec![
        backend.clone(),
        tls_policy(&backend),
        provider_credentials(list_key, name),
    ]
}

/// The MCP `Backend` is named exactly like the server: the AI Gateway prefixes tools with the
/// backendRef name, so `github` gives `github__list_issues`.
pub fn mcp_backend(name: &str) -> String {
    name.to_owned()
}

pub fn mcp_secret(name: &str) -> String {
    format!("mcp-{name}-apikey")
}

pub fn tls_policy(backend: &str) -> String {
    format!("{backend}-tls")
}

/// Every generated name for one deployment, for length checks.
pub fn azure_names(name: &str) -> Vec<String> {
    let backend = azure_backend(name);
    vec![
        backend.clone(),
        tls_policy(&backend),
        azure_security_policy(name),
        azure_secret(name),
        azure_entra(name),
    ]
}

pub fn mcp_names(name: &str) -> Vec<String> {
    let backend = mcp_backend(name);
    vec![backend.clone(), tls_policy(&backend), mcp_secret(name)]
}

/// The name of the first AIGatewayRoute (and of the HTTPRoute the controller generates for it).
pub const AI_ROUTE: &str = "azure-openai";

/// Rules per AIGatewayRoute. Gateway API caps an HTTPRoute at 16 rules, and the v0.4.0 controller
/// copies every AIGatewayRoute rule into the HTTPRoute it generates and adds one catch-all rule
/// (the 404 "No matching route found"). A 16th model rule makes the API server refuse that
/// HTTPRoute while the AIGatewayRoute still reports Accepted (envoyproxy/ai-gateway#2120); later
/// releases cap the CRD itself at 15. More models are spread over several routes.
pub const ROUTE_RULES_MAX: usize = 15;

/// Backends one AIGatewayRoute rule may list (the CRD's `rules[].backendRefs` maxItems): the
/// longest failover chain a model can have.
pub const ROUTE_BACKENDS_MAX: usize = 128;

/// Upstream servers the one MCPRoute may list (the CRD's `spec.backendRefs` maxItems).
pub const MCP_BACKENDS_MAX: usize = 256;

/// Name of the `i`-th AIGatewayRoute (0-based): `azure-openai`, `azure-openai-2`, `azure-openai-3`, …
pub fn ai_route(i: usize) -> String {
    if i == 0 {
        AI_ROUTE.to_owned()
    } else {
        format!("{AI_ROUTE}-{}", i + 1)
    }
}

/// One AIGatewayRoute rule: a model and the backends serving it, in failover order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRoute {
    pub model: String,
    pub backends: Vec<RouteBackend>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteBackend {
    pub backend: String,
    /// 0 is tried first; a model listed in several deployments fails over in list order.
    pub priority: u32,
    /// Set when the Azure deployment name differs from the model name.
    pub model_override: Option<String>,
}

/// Groups models across backends (in failover order, see [`crate::providers::upstreams`]),
/// keeping the first-seen order of models.
pub fn model_routes(upstreams: &[Upstream]) -> Vec<ModelRoute> {
    let mut routes: Vec<ModelRoute> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for u in upstreams {
        for (model, model_override) in &u.models {
            let backend = RouteBackend {
                backend: u.backend.clone(),
                priority: 0,
                model_override: model_override.clone(),
            };
            match index.get(model.as_str()) {
                Some(&i) => {
                    let route = &mut routes[i];
                    let priority = route.backends.len() as u32;
                    route.backends.push(RouteBackend {
                        priority,
                        ..backend
                    });
                }
                None => {
                    index.insert(model, routes.len());
                    routes.push(ModelRoute {
                        model: model.clone(),
                        backends: vec![backend],
                    });
                }
            }
        }
    }
    routes
}

/// The AIGatewayRoutes the model routes are spread over: `(name, rules)`, at most
/// [`ROUTE_RULES_MAX`] rules each, in model order (a new model lands in the last route).
pub fn route_groups(routes: &[ModelRoute]) -> Vec<(String, &[ModelRoute])> {
    routes
        .chunks(ROUTE_RULES_MAX)
        .enumerate()
        .map(|(i, chunk)| (ai_route(i), chunk))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AzureDeployment, Cluster, Model};

    fn dep(name: &str, models: Vec<Model>) -> AzureDeployment {
        AzureDeployment {
            name: name.into(),
            models,
            ..Default::default()
        }
    }

    fn routes_of(deployments: Vec<AzureDeployment>) -> Vec<ModelRoute> {
        let c = Cluster {
            ai_gateway_azure_deployments: deployments,
            ..Default::default()
        };
        model_routes(&crate::providers::upstreams(&c))
    }

    #[test]
    fn shared_models_fail_over_in_list_order() {
        let routes = routes_of(vec![
            dep(
                "a",
                vec![Model::Name("gpt-4".into()), Model::Name("gpt-4o".into())],
            ),
            dep(
                "b",
                vec![Model::Mapped {
                    name: "gpt-4".into(),
                    deployment: "gpt4-eu".into(),
                }],
            ),
        ]);
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].model, "gpt-4");
        assert_eq!(
            routes[0].backends,
            vec![
                RouteBackend {
                    backend: "azure-a".into(),
                    priority: 0,
                    model_override: None
                },
                RouteBackend {
                    backend: "azure-b".into(),
                    priority: 1,
                    model_override: Some("gpt4-eu".into())
                },
            ]
        );
        assert_eq!(routes[1].model, "gpt-4o");
    }

    #[test]
    fn more_than_fifteen_models_spread_over_routes() {
        let models = (0..31).map(|i| Model::Name(format!("m{i}"))).collect();
        let routes = routes_of(vec![dep("a", models)]);
        let groups = route_groups(&routes);
        let shape: Vec<(&str, usize, &str)> = groups
            .iter()
            .map(|(name, rules)| (name.as_str(), rules.len(), rules[0].model.as_str()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("azure-openai", 15, "m0"),
                ("azure-openai-2", 15, "m15"),
                ("azure-openai-3", 1, "m30")
            ]
        );
        assert!(route_groups(&[]).is_empty());
    }
}
