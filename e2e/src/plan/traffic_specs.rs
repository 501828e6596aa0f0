//! [`traffic_specs`]: the traffic checks the rendered routes call for, and the client keys
//! they need from the e2e config.

use crate::gateway::{ClientAuth, GatewayView};
use crate::traffic;

use super::{BudgetIdentity, E2eConfig, TrafficSpec};

/// Every client key the rendered tree guards a route with must be known (in plaintext) from
/// e2e/cluster.yaml: the rendered Secret's key names (which SOPS leaves readable) are checked
/// against `ai_gateway_client_keys`.
fn check_clients(view: &GatewayView, config: &E2eConfig) -> Result<(), String> {
    let auths = view
        .client_auth
        .iter()
        .chain(view.mcp.iter().filter_map(|r| r.client_auth.as_ref()));
    for auth in auths {
        if auth.clients.is_empty() {
            return Err(format!(
                "{} reads client keys from Secret `{}`, which the rendered tree does not hold",
                auth.policy, auth.secret
            ));
        }
        let missing: Vec<&str> = auth
            .clients
            .iter()
            .filter(|c| config.client_key(c).is_none())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "e2e/cluster.yaml: the rendered Secret `{}` has client(s) {} that `ai_gateway_client_keys` does not list; the harness needs their keys",
                auth.secret,
                missing.join(", ")
            ));
        }
    }
    Ok(())
}

/// The first client of e2e/cluster.yaml that `auth` admits; `None` without client keys.
fn first_client(auth: Option<&ClientAuth>, config: &E2eConfig) -> Option<String> {
    let auth = auth?;
    config
        .ai_gateway_client_keys
        .iter()
        .find(|c| auth.clients.contains(&c.name))
        .map(|c| c.name.clone())
}

/// The traffic checks the rendered routes call for, in the order they run (failover stops a
/// mock, so it comes last).
pub fn traffic_specs(view: &GatewayView, config: &E2eConfig) -> Result<Vec<TrafficSpec>, String> {
    check_clients(view, config)?;
    let client = first_client(view.client_auth.as_ref(), config);
    let mut specs = Vec::new();
    for (model, targets) in &view.models {
        let first = targets
            .iter()
            .min_by_key(|t| t.priority)
            .ok_or_else(|| format!("model `{model}` has no backendRefs"))?;
        if let Some(provider) = view.provider_backend(&first.backend) {
            specs.push(TrafficSpec::Provider {
                model: model.clone(),
                backend: first.backend.clone(),
                wire: provider.wire,
                upstream_model: first.deployment.clone().unwrap_or_else(|| model.clone()),
                client: client.clone(),
            });
            continue;
        }
        specs.push(TrafficSpec::Route {
            model: model.clone(),
            backend: first.backend.clone(),
            deployment: first.deployment.clone().unwrap_or_else(|| model.clone()),
            client: client.clone(),
        });
    }
    // The client-key and budget checks speak chat completions to Azure (whose mocks' usage they
    // set): models whose first backend is an Azure one.
    let azure_models: Vec<&String> = view
        .models
        .iter()
        .filter(|(_, targets)| {
            targets
                .iter()
                .min_by_key(|t| t.priority)
                .is_some_and(|t| view.azure_backend(&t.backend).is_some())
        })
        .map(|(model, _)| model)
        .collect();
    specs.push(TrafficSpec::UnknownModel {
        model: "e2e-no-such-model".into(),
        client: client.clone(),
    });
    if let (Some(auth), Some(model)) = (&view.client_auth, azure_models.first()) {
        specs.push(TrafficSpec::ClientKeys {
            model: (*model).clone(),
            header: auth.header.clone(),
            mcp_path: view
                .mcp
                .iter()
                .find(|r| r.client_auth.is_some())
                .map(|r| r.path.clone()),
        });
    }
    if let Some(rule) = view
        .budget
        .iter()
        .filter(|r| traffic::usage_for_budget(r.limit, r.cost).is_some())
        .min_by_key(|r| r.limit)
    {
        // With a shared budget, alternate between two models: one budget must still bite.
        let models: Vec<String> = azure_models
            .iter()
            .take(if rule.shared { 2 } else { 1 })
            .map(|m| (*m).clone())
            .collect();
        if models.is_empty() {
            return Err(format!(
                "BackendTrafficPolicy `{}` limits tokens, but no AIGatewayRoute routes a model",
                rule.policy
            ));
        }
        let keyed_on_client = view.client_auth.as_ref().is_some_and(|auth| {
            auth.client_id_header
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(&rule.header))
        });
        let identity = if keyed_on_client {
            // Two clients besides the one of the other checks, whose budget they must not touch.
            let others: Vec<&str> = config
                .ai_gateway_client_keys
                .iter()
                .map(|c| c.name.as_str())
                .filter(|name| Some(*name) != client.as_deref())
                .filter(|name| {
                    view.client_auth
                        .as_ref()
                        .is_some_and(|a| a.clients.iter().any(|c| c == name))
                })
                .collect();
            let [spender, control, ..] = others[..] else {
                return Err(format!(
                    "e2e/cluster.yaml: the token budget is keyed on the client key's name ({}), so its check needs three `ai_gateway_client_keys` (one for the other checks, one to spend its budget, one as control); found {}",
                    rule.header,
                    config.ai_gateway_client_keys.len()
                ));
            };
            BudgetIdentity::ClientKey {
                client: spender.to_owned(),
                control: control.to_owned(),
            }
        } else {
            BudgetIdentity::Header {
                client: client.clone(),
            }
        };
        specs.push(TrafficSpec::Budget {
            header: rule.header.clone(),
            limit: rule.limit,
            cost: rule.cost,
            shared: rule.shared,
            models,
            identity,
        });
    }
    for route in &view.mcp {
        specs.push(TrafficSpec::Mcp {
            route: route.name.clone(),
            path: route.path.clone(),
            backends: route.backends.iter().map(|b| b.name.clone()).collect(),
            client: first_client(route.client_auth.as_ref(), config),
        });
    }
    for (model, targets) in view.failover_models() {
        let mut sorted = targets.to_vec();
        sorted.sort_by_key(|t| t.priority);
        if let Some(second) = sorted.iter().find(|t| t.backend != sorted[0].backend) {
            specs.push(TrafficSpec::Failover {
                model: model.to_owned(),
                stop: sorted[0].backend.clone(),
                expect: second.backend.clone(),
                client: client.clone(),
                first_try: view
                    .failover_policy(&sorted[0].route)
                    .is_some_and(|p| p.retries_connect_failures_on_next_priority()),
            });
        }
    }
    Ok(specs)
}
