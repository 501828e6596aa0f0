//! How the plan prints (`cargo xtask e2e --plan`, and the harness's progress lines).

use std::fmt;

use crate::traffic;

use super::{
    Action, BudgetIdentity, CLUSTER, MCP_TOOLS, MOCK_IMAGE, MockSpec, OCI_REPOSITORY, Plan,
    TrafficSpec,
};

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Run { program, args, env } => {
                for (k, v) in env {
                    write!(f, "{k}={} ", shell_quote(v))?;
                }
                write!(f, "{program}")?;
                for arg in args {
                    write!(f, " {}", shell_quote(arg))?;
                }
                Ok(())
            }
            Action::LoadMockImage { binary } => write!(
                f,
                "write a one-layer image archive of {} as {MOCK_IMAGE}, then `docker load` it",
                binary.display()
            ),
            Action::PackArtifact => write!(
                f,
                "pack kubernetes/ of the rendered tree as a Flux artifact (tar+gzip)"
            ),
            Action::StartMock(spec) => match spec {
                MockSpec::Azure {
                    name,
                    hostname,
                    port,
                    deployments,
                    ..
                } => write!(
                    f,
                    "start mock `{name}`: Azure OpenAI for {hostname}:{port} (TLS, test CA), deployments {}, api-key from e2e/cluster.yaml",
                    deployments.join(", ")
                ),
                MockSpec::Mcp {
                    name,
                    hostname,
                    port,
                    path,
                    api_key,
                    api_key_header,
                } => write!(
                    f,
                    "start mock `{name}`: MCP server at https://{hostname}:{port}{path} (tools {}), {}",
                    MCP_TOOLS.join(", "),
                    match api_key {
                        Some(_) => format!(
                            "API key required in `{}`",
                            api_key_header.as_deref().unwrap_or("Authorization")
                        ),
                        None => "no API key".to_owned(),
                    }
                ),
                MockSpec::Provider {
                    name,
                    hostname,
                    port,
                    wire,
                    tls,
                    credential,
                    region,
                    models,
                    ..
                } => write!(
                    f,
                    "start mock `{name}`: {wire:?} for {hostname}:{port} ({}), models {}, {}",
                    if *tls { "TLS, test CA" } else { "plain HTTP" },
                    models.join(", "),
                    match (wire, credential) {
                        (crate::mock::Wire::Bedrock, _) => format!(
                            "SigV4 scoped to the access key id from e2e/cluster.yaml and region {}",
                            region.as_deref().unwrap_or("?")
                        ),
                        (_, Some(_)) => "key from e2e/cluster.yaml required".to_owned(),
                        (_, None) => "no credential, and no Authorization accepted".to_owned(),
                    }
                ),
                MockSpec::Oci {
                    name,
                    hostname,
                    port,
                } => {
                    write!(
                        f,
                        "start mock `{name}`: OCI registry at http://{hostname}:{port}/v2/{OCI_REPOSITORY} serving the artifact"
                    )
                }
            },
            Action::PatchCoreDns => write!(
                f,
                "add CoreDNS `hosts` entries: each mock hostname → its container IP on the kind network; restart coredns"
            ),
            Action::MetalLbPool => write!(
                f,
                "apply IPAddressPool + L2Advertisement: .255.200-.255.250 of the kind network's IPv4 subnet"
            ),
            Action::AgeSecret { key_file } => {
                write!(
                    f,
                    "create Secret flux-system/sops-age (age.agekey) from {} through the API",
                    key_file.display()
                )
            }
            Action::WriteValues { path, source, .. } => {
                write!(f, "write spec.values of {source} to {}", path.display())
            }
            Action::Apply { what, .. } => write!(f, "apply {what}"),
            Action::WaitKustomization {
                namespace,
                name,
                minutes,
            } => {
                write!(
                    f,
                    "wait ≤{minutes}m for Kustomization {namespace}/{name} Ready"
                )
            }
            Action::Check(spec) => {
                write!(
                    f,
                    "check [{}] {} in {}",
                    spec.check, spec.kind, spec.namespace
                )?;
                if spec.expected.is_empty() {
                    write!(f, " (all found)")
                } else {
                    let names: Vec<&str> = spec.expected.iter().map(|e| e.name.as_str()).collect();
                    write!(f, ": {}", names.join(", "))
                }
            }
            Action::Traffic(spec) => write!(f, "traffic: {spec}"),
            Action::Hardening(spec) => write!(f, "check {spec}"),
        }
    }
}

/// ` (client key `name`)` when the request carries a client key.
fn as_client(client: &Option<String>) -> String {
    client
        .as_deref()
        .map(|c| format!(" (client key `{c}`)"))
        .unwrap_or_default()
}

impl fmt::Display for TrafficSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrafficSpec::Route {
                model,
                backend,
                deployment,
                client,
            } => write!(
                f,
                "model `{model}`{} → 200 from {backend}'s mock, upstream path /openai/deployments/{deployment}/chat/completions with its api-key and no Authorization",
                as_client(client)
            ),
            TrafficSpec::Provider {
                model,
                backend,
                wire,
                upstream_model,
                client,
            } => {
                let (api, what) = match wire {
                    crate::mock::Wire::OpenAi => (
                        "/v1/chat/completions",
                        "OpenAI chat completions with its Bearer key (none for a keyless in-cluster server, and no client Authorization)",
                    ),
                    crate::mock::Wire::Anthropic => (
                        "/anthropic/v1/messages",
                        "/v1/messages with its key in x-api-key and no Authorization",
                    ),
                    crate::mock::Wire::Bedrock => (
                        "/v1/chat/completions",
                        "/model/<id>/converse signed with SigV4 for its key id, region and service bedrock",
                    ),
                };
                write!(
                    f,
                    "model `{model}`{} on {api} → 200 from {backend}'s mock: {what}, model id `{upstream_model}`",
                    as_client(client)
                )
            }
            TrafficSpec::UnknownModel { model, client } => write!(
                f,
                "model `{model}`{} → 404, no upstream reached",
                as_client(client)
            ),
            TrafficSpec::ClientKeys {
                model,
                header,
                mcp_path,
            } => {
                write!(
                    f,
                    "client keys: model `{model}` with no {header} and with an unknown key → 401, no upstream reached"
                )?;
                if let Some(path) = mcp_path {
                    write!(f, "; MCP {path} initialize with no key → 401")?;
                }
                Ok(())
            }
            TrafficSpec::Failover {
                model,
                stop,
                expect,
                client,
                first_try,
            } => write!(
                f,
                "stop {stop}'s mock, model `{model}`{} → 200 from {expect}'s mock{}",
                as_client(client),
                if *first_try {
                    " on the first request (the failover policy retries a connect failure on the next priority)"
                } else {
                    " (within 10 tries: no failover policy retries it)"
                }
            ),
            TrafficSpec::Budget {
                header,
                limit,
                cost,
                shared,
                models,
                identity,
            } => {
                let per_request = traffic::usage_for_budget(*limit, *cost)
                    .and_then(|u| traffic::cost_of(*cost, u))
                    .unwrap_or(0);
                let refused = traffic::first_refused(&[traffic::Charge {
                    limit: *limit,
                    per_request,
                }])
                .unwrap_or(0);
                let models = models
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(" and ");
                write!(
                    f,
                    "budget {limit} {cost:?} per {header}{}: mock reports {per_request} per answer; ",
                    if *shared {
                        " (shared by every route)"
                    } else {
                        ""
                    }
                )?;
                let (spender, control) = match identity {
                    BudgetIdentity::Header { client } => (
                        format!("one {header}{}", as_client(client)),
                        format!("another {header}"),
                    ),
                    BudgetIdentity::ClientKey { client, control } => (
                        format!(
                            "client key `{client}` (sending a different {header} each time, which the gateway replaces)"
                        ),
                        format!("client key `{control}`"),
                    ),
                };
                write!(
                    f,
                    "{spender}, model {models} → 200 × {} then 429 on request {refused}; {control} → 200",
                    refused.saturating_sub(1)
                )
            }
            TrafficSpec::Mcp {
                route,
                path,
                backends,
                client,
            } => write!(
                f,
                "MCP {path} (MCPRoute {route}){}: initialize, tools/list = `<backend>__<tool>` for backends {} filtered by toolSelector, tools/call one",
                as_client(client),
                backends.join(", ")
            ),
        }
    }
}

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c))
    {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "{}. {}", i + 1, step.title)?;
            for action in &step.actions {
                writeln!(f, "   - {action}")?;
            }
        }
        writeln!(
            f,
            "{}. Clean up (skipped with --keep)",
            self.steps.len() + 1
        )?;
        writeln!(f, "   - stop and remove the mock containers")?;
        writeln!(f, "   - kind delete cluster --name {CLUSTER}")
    }
}
