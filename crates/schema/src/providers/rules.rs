//! Rules relating the keys of the provider lists and of Entra ID (issue 16).
//!
//! Like every rule (see `crate::rules`), a rule whose inputs failed their own check stays silent.

use std::collections::HashMap;

use super::routes::{ClientApi, upstreams};
use crate::model::Cluster;
use crate::names;
use crate::rules::{Ctx, FirstSeen};

const PROVIDER_LISTS: [&str; 3] = [
    "ai_gateway_openai_backends",
    "ai_gateway_anthropic_backends",
    "ai_gateway_bedrock_backends",
];

/// Whether some key at or under `path` failed its own check.
fn broken(cx: &Ctx<'_>, path: &str) -> bool {
    cx.src.invalid.iter().any(|p| {
        p == path || p.starts_with(&format!("{path}.")) || p.starts_with(&format!("{path}["))
    })
}

fn names_of(c: &Cluster, key: &str) -> Vec<String> {
    match key {
        "ai_gateway_openai_backends" => c
            .ai_gateway_openai_backends
            .iter()
            .map(|b| b.name.clone())
            .collect(),
        "ai_gateway_anthropic_backends" => c
            .ai_gateway_anthropic_backends
            .iter()
            .map(|b| b.name.clone())
            .collect(),
        _ => c
            .ai_gateway_bedrock_backends
            .iter()
            .map(|b| b.name.clone())
            .collect(),
    }
}

/// `(list key, name, path of the name)` of every provider entry whose name is set and first
/// in its list, for the shared name checks (length, collisions with Azure and MCP).
pub(crate) fn entries(c: &Cluster) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    for key in PROVIDER_LISTS {
        let mut seen = std::collections::HashSet::new();
        for (i, name) in names_of(c, key).into_iter().enumerate() {
            if !name.is_empty() && seen.insert(name.clone()) {
                out.push((key, name, format!("{key}[{i}].name")));
            }
        }
    }
    out
}

pub(crate) fn check(cx: &mut Ctx<'_>, c: &Cluster) {
    azure_credentials(cx, c);
    openai_targets(cx, c);
    for key in PROVIDER_LISTS {
        let list = names_of(c, key);
        let mut seen = FirstSeen::default();
        for (i, name) in list.iter().enumerate().filter(|(_, n)| !n.is_empty()) {
            if let Some(first) = seen.check(name, i) {
                cx.error(
                    "ai_duplicate_backend",
                    &format!("{key}[{i}].name"),
                    format!("backend name `{name}` is also used by {key}[{first}]"),
                    "backend names must be unique within a list; to fail over, give the second entry its own name".to_owned(),
                );
            }
        }
    }
    models(cx, c);
}

/// Exactly one of `api_key` and `entra_id` per Azure deployment.
fn azure_credentials(cx: &mut Ctx<'_>, c: &Cluster) {
    for (i, d) in c.ai_gateway_azure_deployments.iter().enumerate() {
        let path = format!("ai_gateway_azure_deployments[{i}]");
        if broken(cx, &format!("{path}.api_key")) || broken(cx, &format!("{path}.entra_id")) {
            continue;
        }
        match (&d.api_key, &d.entra_id) {
            (Some(_), Some(_)) => {
                cx.error(
                    "ai_azure_auth",
                    &format!("{path}.entra_id"),
                    format!("deployment `{}` sets both api_key and entra_id; the gateway authenticates with exactly one", d.name),
                    "keep `api_key` (an `api-key` header, AzureAPIKey) or `entra_id` (access tokens of a service principal, AzureCredentials), not both".to_owned(),
                );
            }
            (None, None) => {
                cx.error(
                    "ai_azure_auth",
                    &path,
                    format!("deployment `{}` has no credential: set api_key or entra_id", d.name),
                    "add `api_key: <key of the resource>`, or `entra_id: {tenant_id: <GUID>, client_id: <GUID>, client_secret: <secret>}` for a service principal".to_owned(),
                );
            }
            _ => {}
        }
    }
}

/// OpenAI entries: exactly one of `host` and `service`; an external host needs a key and must not
/// be a cluster-internal name.
fn openai_targets(cx: &mut Ctx<'_>, c: &Cluster) {
    for (i, b) in c.ai_gateway_openai_backends.iter().enumerate() {
        let path = format!("ai_gateway_openai_backends[{i}]");
        if broken(cx, &format!("{path}.host")) || broken(cx, &format!("{path}.service")) {
            continue;
        }
        match (&b.host, &b.service) {
            (Some(_), Some(_)) => {
                cx.error(
                    "ai_openai_target",
                    &format!("{path}.service"),
                    format!("backend `{}` sets both host and service", b.name),
                    "keep `host` for an endpoint outside the cluster (HTTPS on 443) or `service` for an in-cluster Service (plain HTTP), not both".to_owned(),
                );
            }
            (None, None) => {
                cx.error(
                    "ai_openai_target",
                    &path,
                    format!("backend `{}` has neither host nor service", b.name),
                    "add `host: api.openai.com` (or another OpenAI-compatible host), or `service: {name: <service>, namespace: <namespace>, port: <port>}` for a model server in the cluster".to_owned(),
                );
            }
            (Some(host), None) => {
                if host.ends_with(".svc") || host.contains(".svc.") || host.ends_with(".local") {
                    cx.error(
                        "ai_openai_host_in_cluster",
                        &format!("{path}.host"),
                        format!("`{host}` is a cluster-internal name, but `host` is spoken to in HTTPS on 443 with a public certificate check"),
                        "for a Service in the cluster write `service: {name: <service>, namespace: <namespace>, port: <port>}` instead (plain HTTP, no BackendTLSPolicy)".to_owned(),
                    );
                } else if b.api_key.is_none() && !broken(cx, &format!("{path}.api_key")) {
                    cx.error(
                        "ai_openai_no_key",
                        &format!("{path}.host"),
                        format!("backend `{}` reaches `{host}` over the Internet without an api_key", b.name),
                        "add `api_key: <key>` (sent as `Authorization: Bearer`); only an in-cluster `service` may go without credentials".to_owned(),
                    );
                }
            }
            (None, Some(_)) => {}
        }
    }
}

/// Models: listed once per backend, a failover chain fits one route rule, and no model is
/// served on both client APIs.
fn models(cx: &mut Ctx<'_>, c: &Cluster) {
    let all = upstreams(c);
    for u in all
        .iter()
        .filter(|u| !u.path.starts_with("ai_gateway_azure"))
    {
        let mut seen = FirstSeen::default();
        for (j, (model, _)) in u.models.iter().enumerate().filter(|(_, m)| !m.0.is_empty()) {
            if let Some(first) = seen.check(model, j) {
                cx.error(
                    "ai_duplicate_model",
                    &format!("{}.models[{j}]", u.path),
                    format!(
                        "model `{model}` is listed twice in backend `{}` (also at models[{first}])",
                        u.backend
                    ),
                    "list each model once per backend; to fail over, list it in another backend"
                        .to_owned(),
                );
            }
        }
    }
    // A model's failover chain is one AIGatewayRoute rule's backendRefs (at most 128).
    let mut chains: HashMap<&str, (usize, ClientApi, &str)> = HashMap::new();
    let mut mixed_reported = std::collections::HashSet::new();
    for u in &all {
        for (j, (model, _)) in u.models.iter().enumerate().filter(|(_, m)| !m.0.is_empty()) {
            let path = format!("{}.models[{j}]", u.path);
            let entry = chains
                .entry(model.as_str())
                .or_insert((0, u.api, u.path.as_str()));
            entry.0 += 1;
            if entry.0 == names::ROUTE_BACKENDS_MAX + 1 {
                cx.error(
                    "ai_failover_chain_too_long",
                    &path,
                    format!(
                        "model `{model}` is served by more than {} backends; one AIGatewayRoute rule holds at most {}",
                        names::ROUTE_BACKENDS_MAX,
                        names::ROUTE_BACKENDS_MAX
                    ),
                    "list the model in at most 128 deployments and backends (the failover order follows `priority`, then the lists)".to_owned(),
                );
            }
            if entry.1 != u.api && mixed_reported.insert(model.clone()) {
                let first = entry.2.to_owned();
                cx.error(
                    "ai_mixed_api",
                    &path,
                    format!("model `{model}` is served by an Anthropic backend and by a backend speaking OpenAI chat completions; AI Gateway v0.4.0 translates neither API into the other, so every request to one of them would fail"),
                    "Anthropic models are served on `/anthropic/v1/messages` only: give the Anthropic model its own name, and fail over only between Anthropic backends (or only between Azure, OpenAI and Bedrock backends)".to_owned(),
                );
                cx.note_at(format!("{first} serves it too"), &first);
            }
        }
    }
}
