//! The traffic checks: requests through the gateway, judged by [`crate::traffic`] and
//! [`crate::providers`] from what the mocks recorded.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use crate::client::mcp::McpClient;
use crate::client::openai::OpenAiClient;
use crate::mock::{self, Wire};
use crate::plan::{self, MockSpec, TrafficSpec};
use crate::providers::ProviderRoute;
use crate::traffic::{self, Route};

use super::mocks::DEFAULT_USAGE;
use super::state::State;

impl State {
    pub(super) async fn traffic(&mut self, spec: &TrafficSpec) -> traffic::Verdict {
        self.traffic_inner(spec)
            .await
            .unwrap_or_else(|err| Err(format!("{err:#}")))
    }

    /// The plaintext key of a client named in the plan (from e2e/cluster.yaml).
    fn key_of(&self, client: &Option<String>) -> anyhow::Result<Option<String>> {
        client
            .as_deref()
            .map(|name| {
                self.config
                    .client_key(name)
                    .map(str::to_owned)
                    .with_context(|| format!("client `{name}` has no key in e2e/cluster.yaml"))
            })
            .transpose()
    }

    async fn traffic_inner(&mut self, spec: &TrafficSpec) -> anyhow::Result<traffic::Verdict> {
        let gateway = OpenAiClient::new(self.gateway_endpoint("").await?);
        match spec {
            TrafficSpec::Route {
                model,
                backend,
                deployment,
                client,
            } => {
                let openai = gateway.with_api_key(self.key_of(client)?.as_deref());
                let outcome = openai
                    .chat(model, Some(&format!("e2e-route-{model}")))
                    .await?;
                self.routed(
                    model,
                    deployment,
                    backend,
                    outcome.status,
                    outcome.upstream.as_deref(),
                )
                .await
            }
            TrafficSpec::Provider {
                model,
                backend,
                wire,
                upstream_model,
                client,
            } => {
                let openai = gateway.with_api_key(self.key_of(client)?.as_deref());
                let outcome = match wire {
                    Wire::Anthropic => {
                        openai
                            .messages(model, Some(&format!("e2e-route-{model}")))
                            .await?
                    }
                    Wire::OpenAi | Wire::Bedrock => {
                        openai
                            .chat(model, Some(&format!("e2e-route-{model}")))
                            .await?
                    }
                };
                self.routed(
                    model,
                    upstream_model,
                    backend,
                    outcome.status,
                    outcome.upstream.as_deref(),
                )
                .await
            }
            TrafficSpec::UnknownModel { model, client } => {
                let openai = gateway.with_api_key(self.key_of(client)?.as_deref());
                let outcome = openai.chat(model, Some("e2e-unknown")).await?;
                Ok(traffic::unknown_model_refused(
                    outcome.status,
                    outcome.upstream.as_deref(),
                ))
            }
            TrafficSpec::ClientKeys {
                model, mcp_path, ..
            } => {
                let mut attempts = Vec::new();
                for (what, key) in [
                    ("no key", None),
                    ("an unknown key", Some("e2e-not-a-client-key")),
                ] {
                    let outcome = gateway.with_api_key(key).chat(model, None).await?;
                    attempts.push((
                        format!("model `{model}` with {what}"),
                        outcome.status,
                        outcome.upstream,
                    ));
                }
                if let Some(path) = mcp_path {
                    let mut client = McpClient::new(self.gateway_endpoint(path).await?);
                    let status = match client.initialize().await {
                        Ok(_) => 200,
                        Err(crate::client::mcp::McpError::Status(status, _)) => status,
                        Err(other) => return Err(other.into()),
                    };
                    attempts.push((format!("MCP {path} with no key"), status, None));
                }
                Ok(traffic::refused_without_key(&attempts))
            }
            TrafficSpec::Budget {
                header,
                limit,
                cost,
                models,
                identity,
                ..
            } => {
                let usage = traffic::usage_for_budget(*limit, *cost)
                    .context("budget cannot be exercised")?;
                let per_request = traffic::cost_of(*cost, usage).unwrap_or(0);
                let refused = traffic::first_refused(&[traffic::Charge {
                    limit: *limit,
                    per_request,
                }])
                .unwrap_or(0);
                let (spender, control) = match identity {
                    plan::BudgetIdentity::Header { client } => {
                        let key = self.key_of(client)?;
                        let user = format!("e2e-budget-{}", std::process::id());
                        (
                            (gateway.with_api_key(key.as_deref()), Some(user.clone())),
                            (
                                gateway.with_api_key(key.as_deref()),
                                format!("{user}-control"),
                            ),
                        )
                    }
                    plan::BudgetIdentity::ClientKey { client, control } => (
                        (
                            gateway.with_api_key(self.key_of(&Some(client.clone()))?.as_deref()),
                            None,
                        ),
                        (
                            gateway.with_api_key(self.key_of(&Some(control.clone()))?.as_deref()),
                            format!("e2e-budget-control-{}", std::process::id()),
                        ),
                    ),
                };
                self.set_usage(usage).await?;
                let mut statuses = Vec::new();
                for i in 0..refused {
                    let model = &models[usize::try_from(i).unwrap_or(0) % models.len()];
                    // With client keys the gateway replaces the header: a different value on every
                    // request must not escape the budget.
                    let user = spender
                        .1
                        .clone()
                        .unwrap_or_else(|| format!("e2e-spoofed-{header}-{i}"));
                    statuses.push(spender.0.chat(model, Some(&user)).await?.status);
                }
                let control_status = control.0.chat(&models[0], Some(&control.1)).await?.status;
                self.set_usage(DEFAULT_USAGE).await?;
                Ok(traffic::budget_bites(refused, &statuses, control_status)
                    .map(|d| format!("{d} (statuses {statuses:?})")))
            }
            TrafficSpec::Mcp {
                path, client: who, ..
            } => {
                let route = self
                    .plan
                    .view
                    .mcp
                    .iter()
                    .find(|r| &r.path == path)
                    .context("MCPRoute not in view")?;
                let served = route
                    .backends
                    .iter()
                    .map(|b| {
                        (
                            b.name.clone(),
                            plan::MCP_TOOLS.iter().map(|t| (*t).to_owned()).collect(),
                        )
                    })
                    .collect();
                let expected = traffic::expected_tools(&route.backends, &served)
                    .map_err(anyhow::Error::msg)?;
                let mut client = McpClient::new(self.gateway_endpoint(path).await?);
                if let Some(key) = self.key_of(who)? {
                    client = client.with_header("authorization", &format!("Bearer {key}"));
                }
                client.initialize().await?;
                let listed = client.list_tools().await?;
                let verdict = traffic::tools_match(&expected, &listed);
                if verdict.is_ok()
                    && let Some(first) = expected.iter().next()
                {
                    let text = client.call_tool(first, json!({"e2e": true})).await?;
                    let tool = first.split_once("__").map_or(first.as_str(), |(_, t)| t);
                    if !text.contains(&format!("ran {tool}")) {
                        return Ok(Err(format!("tools/call {first} answered {text:?}")));
                    }
                }
                let _ = client.close().await;
                Ok(verdict)
            }
            TrafficSpec::Failover {
                model,
                stop,
                expect,
                client,
                first_try,
            } => {
                let openai = gateway.with_api_key(self.key_of(client)?.as_deref());
                let stopped = self
                    .mock_for_backend(stop)
                    .context("no mock for the first backend")?
                    .spec
                    .name()
                    .to_owned();
                if let Some(container) = self.mocks.get(&stopped).and_then(|m| m.container.as_ref())
                    && !self.stopped.contains(&stopped)
                {
                    container
                        .stop()
                        .await
                        .context("cannot stop the first backend's mock")?;
                    self.stopped.insert(stopped.clone());
                }
                // The Azure deployment behind the second backend (its modelNameOverride, if any).
                let deployment = self
                    .plan
                    .view
                    .models
                    .get(model)
                    .and_then(|targets| targets.iter().find(|t| &t.backend == expect))
                    .and_then(|t| t.deployment.clone())
                    .unwrap_or_else(|| model.clone());
                let mut attempts = Vec::new();
                for _ in 0..10 {
                    let outcome = openai.chat(model, Some("e2e-failover")).await?;
                    let verdict = self
                        .routed(
                            model,
                            &deployment,
                            expect,
                            outcome.status,
                            outcome.upstream.as_deref(),
                        )
                        .await?;
                    let done = verdict.is_ok();
                    attempts.push(verdict);
                    if done {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                Ok(traffic::failover(&attempts, *first_try)
                    .map(|d| format!("with {stopped} stopped: {d}")))
            }
        }
    }

    async fn routed(
        &self,
        model: &str,
        deployment: &str,
        backend: &str,
        status: u16,
        upstream: Option<&str>,
    ) -> anyhow::Result<traffic::Verdict> {
        let mock = self
            .mock_for_backend(backend)
            .with_context(|| format!("no mock for backend {backend}"))?;
        if let MockSpec::Provider {
            wire,
            credential,
            region,
            prefix,
            ..
        } = &mock.spec
        {
            let recorded = mock::fetch_recorded(&self.admin(mock)?).await?;
            let route = ProviderRoute {
                model,
                upstream_model: deployment,
                upstream: mock.spec.name(),
                wire: *wire,
                prefix,
                credential: credential.as_deref(),
                region: region.as_deref(),
            };
            return Ok(crate::providers::routed_to_provider(
                &route, status, upstream, &recorded,
            ));
        }
        let MockSpec::Azure { api_key, .. } = &mock.spec else {
            bail!("not an Azure mock")
        };
        let api_version = &self
            .plan
            .view
            .azure_backend(backend)
            .context("backend not in view")?
            .api_version;
        let recorded = mock::fetch_recorded(&self.admin(mock)?).await?;
        let route = Route {
            model,
            deployment,
            upstream: mock.spec.name(),
            api_key,
            api_version,
        };
        Ok(traffic::routed_to(&route, status, upstream, &recorded))
    }
}
