//! Issue 13's live checks: what only a cluster can show about the AI Gateway being closed by
//! default. The specs come from the rendered tree; the verdicts are pure functions over what the
//! harness observed (a mock's request log, object JSON, a probe's output, an Envoy config dump,
//! a metrics page), tested here without a cluster.
//!
//! | Check | Passes when |
//! |---|---|
//! | forged MCP headers | a request carrying `x-ai-eg-mcp-backend` / `x-ai-eg-mcp-route` for a configured server, sent straight to the gateway without the MCP protocol, reaches no MCP upstream (so no token goes out) |
//! | MCP session seed | the controller Deployment passes `--mcpSessionEncryptionSeed` from a Secret, and every external processor in the AI gateway's pods runs with a seed that is not a default |
//! | no retries on `aiops` | the routes of the outer gateways' Envoy that serve `aiops` carry no retry policy (`/config_dump`) |
//! | Redis isolated | a pod in another namespace cannot reach Redis (the NetworkPolicy holds; needs a CNI that enforces policies) |
//! | metrics answer | Envoy's `/stats/prometheus`, the external processor's and the controller's `/metrics` answer with the expected metric families |

use std::fmt;

use serde_json::Value;

use crate::gateway::GatewayView;
use crate::rendered::Tree;
use crate::traffic::Verdict;

/// The headers the v0.4.0 controller's per-server MCP routes match.
pub const MCP_ROUTING_HEADERS: [&str; 2] = ["x-ai-eg-mcp-backend", "x-ai-eg-mcp-route"];
/// Seeds that are public: the controller's flag default and the chart's unused value (v0.4.0).
pub const DEFAULT_SEEDS: [&str; 2] = ["seed", "default-insecure-seed"];
/// The AI Gateway controller's Deployment (the chart's `fullnameOverride`).
pub const CONTROLLER: &str = "ai-gateway-controller";
/// The external processor container the controller's webhook adds to the AI gateway's pods.
pub const EXTPROC: &str = "ai-gateway-extproc";
/// The image the Redis probe runs (the one the rendered Redis uses, so nothing new is pulled).
pub const PROBE_IMAGE: &str = "docker.io/library/redis:8.2.3-alpine";

/// One metrics endpoint to scrape through `kubectl port-forward`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsTarget {
    pub namespace: String,
    /// What `kubectl port-forward` takes: `deploy/<name>` or `svc/<name>`.
    pub resource: String,
    pub port: u16,
    pub path: String,
    /// Metric name prefixes that must appear.
    pub expect: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HardeningSpec {
    ForgedMcpHeaders {
        /// The MCPRoute's `namespace/name` (the value of `x-ai-eg-mcp-route`).
        route: String,
        backends: Vec<String>,
    },
    SessionSeed {
        namespace: String,
    },
    NoRetry {
        /// `namespace/name` of the HTTPRoute in front of the AI gateway.
        route: String,
        /// `(namespace, Envoy Deployment)` of each Gateway it attaches to.
        envoys: Vec<(String, String)>,
    },
    RedisIsolated {
        /// `<service>.<namespace>.svc.cluster.local`.
        host: String,
        port: u16,
    },
    MetricsAnswer {
        targets: Vec<MetricsTarget>,
    },
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn arr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The checks the rendered tree calls for. Envoy Deployments are named after their Gateway
/// (the base's GatewayNamespace mode).
pub fn specs(tree: &Tree, view: &GatewayView) -> Vec<HardeningSpec> {
    let mut out = Vec::new();
    for route in &view.mcp {
        out.push(HardeningSpec::ForgedMcpHeaders {
            route: format!("{}/{}", route.namespace, route.name),
            backends: route.backends.iter().map(|b| b.name.clone()).collect(),
        });
    }
    if !view.mcp.is_empty() {
        out.push(HardeningSpec::SessionSeed {
            namespace: view.namespace.clone(),
        });
    }
    let ai_service = view
        .service
        .as_ref()
        .and_then(|svc| svc.name.clone().map(|n| (svc.namespace.clone(), n)));
    for doc in tree.of_kind("HTTPRoute") {
        let ns = doc
            .declared_namespace()
            .unwrap_or(&view.namespace)
            .to_owned();
        let to_ai = arr(&doc.value, "/spec/rules").iter().any(|rule| {
            arr(rule, "/backendRefs").iter().any(|b| {
                let bns = b
                    .pointer("/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(&ns);
                ai_service.as_ref() == Some(&(bns.to_owned(), s(b, "/name").to_owned()))
            })
        });
        if !to_ai {
            continue;
        }
        let envoys = arr(&doc.value, "/spec/parentRefs")
            .iter()
            .map(|p| {
                let pns = p
                    .pointer("/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(&ns);
                (pns.to_owned(), s(p, "/name").to_owned())
            })
            .collect();
        out.push(HardeningSpec::NoRetry {
            route: format!("{ns}/{}", doc.name()),
            envoys,
        });
    }
    for doc in tree.of_kind("NetworkPolicy") {
        let ns = doc.declared_namespace().unwrap_or(&view.namespace);
        if s(
            &doc.value,
            "/spec/podSelector/matchLabels/app.kubernetes.io~1name",
        ) == "redis"
        {
            out.push(HardeningSpec::RedisIsolated {
                host: format!("redis.{ns}.svc.cluster.local"),
                port: 6379,
            });
        }
    }
    let mut targets = Vec::new();
    if tree.of_kind("PodMonitor").next().is_some()
        && let Some(gateway) = ai_service.as_ref()
    {
        targets.push(MetricsTarget {
            namespace: gateway.0.clone(),
            resource: format!("deploy/{}", gateway.1),
            port: 19001,
            path: "/stats/prometheus".into(),
            expect: vec!["envoy_http_downstream_rq_total".into()],
        });
        targets.push(MetricsTarget {
            namespace: gateway.0.clone(),
            resource: format!("deploy/{}", gateway.1),
            port: 1064,
            path: "/metrics".into(),
            expect: vec!["gen_ai_".into()],
        });
    }
    if tree.of_kind("ServiceMonitor").next().is_some() {
        targets.push(MetricsTarget {
            namespace: view.namespace.clone(),
            resource: format!("svc/{CONTROLLER}"),
            port: 9090,
            path: "/metrics".into(),
            expect: vec!["controller_runtime_".into()],
        });
    }
    if !targets.is_empty() {
        out.push(HardeningSpec::MetricsAnswer { targets });
    }
    out
}

impl fmt::Display for HardeningSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HardeningSpec::ForgedMcpHeaders { route, backends } => write!(
                f,
                "forged MCP headers: POST / with {}: <backend>, {}: {route} for {} → no MCP upstream reached (no token sent)",
                MCP_ROUTING_HEADERS[0],
                MCP_ROUTING_HEADERS[1],
                backends.join(", ")
            ),
            HardeningSpec::SessionSeed { namespace } => write!(
                f,
                "MCP session seed: Deployment {namespace}/{CONTROLLER} passes it from a Secret; every {EXTPROC} in {namespace} runs with a seed that is not {DEFAULT_SEEDS:?}"
            ),
            HardeningSpec::NoRetry { route, envoys } => {
                let envoys: Vec<String> = envoys.iter().map(|(n, d)| format!("{n}/{d}")).collect();
                write!(
                    f,
                    "no retries: the routes of HTTPRoute {route} in the config dump of {} carry no retry policy",
                    envoys.join(", ")
                )
            }
            HardeningSpec::RedisIsolated { host, port } => write!(
                f,
                "Redis isolated: a pod in `default` ({PROBE_IMAGE}) cannot reach {host}:{port}"
            ),
            HardeningSpec::MetricsAnswer { targets } => {
                let t: Vec<String> = targets
                    .iter()
                    .map(|t| {
                        format!(
                            "{}/{}:{}{} ({})",
                            t.namespace,
                            t.resource,
                            t.port,
                            t.path,
                            t.expect.join(", ")
                        )
                    })
                    .collect();
                write!(f, "metrics answer: {}", t.join("; "))
            }
        }
    }
}

/// Forged routing headers: the request must not reach any MCP upstream. `recorded` is the number
/// of requests the MCP mocks logged while it was sent (their logs were cleared before).
pub fn forged_headers_refused(status: u16, recorded: usize, token_seen: bool) -> Verdict {
    if recorded == 0 {
        Ok(format!(
            "{status} from the gateway, no MCP upstream reached"
        ))
    } else if token_seen {
        Err(format!(
            "the forged request reached an MCP upstream {recorded} time(s) with its token (status {status})"
        ))
    } else {
        Err(format!(
            "the forged request reached an MCP upstream {recorded} time(s) (status {status})"
        ))
    }
}

/// The seed a container passes: `--mcpSessionEncryptionSeed=V`, `-mcpSessionEncryptionSeed=V` or
/// the flag followed by `V`.
fn seed_arg(container: &Value) -> Option<String> {
    let args: Vec<&str> = arr(container, "/args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for (i, a) in args.iter().enumerate() {
        let bare = a.trim_start_matches('-');
        if let Some(v) = bare.strip_prefix("mcpSessionEncryptionSeed=") {
            return Some(v.to_owned());
        }
        if bare == "mcpSessionEncryptionSeed" {
            return args.get(i + 1).map(|v| (*v).to_owned());
        }
    }
    None
}

/// The controller Deployment: the seed flag reads a variable that comes from a Secret.
pub fn controller_seed(deployment: &Value) -> (bool, String) {
    let containers = arr(deployment, "/spec/template/spec/containers");
    for c in containers {
        let Some(value) = seed_arg(c) else { continue };
        if DEFAULT_SEEDS.contains(&value.as_str()) {
            return (
                false,
                format!("runs with the public default seed `{value}`"),
            );
        }
        let Some(var) = value.strip_prefix("$(").and_then(|v| v.strip_suffix(')')) else {
            return (
                false,
                "the seed is written into the Deployment in plaintext".into(),
            );
        };
        let from_secret = arr(c, "/env")
            .iter()
            .find(|e| s(e, "/name") == var)
            .and_then(|e| {
                e.pointer("/valueFrom/secretKeyRef")
                    .map(|r| format!("{}/{}", s(r, "/name"), s(r, "/key")))
            });
        return match from_secret {
            Some(r) => (true, format!("seed from Secret key {r}")),
            None => (false, format!("$({var}) does not come from a Secret")),
        };
    }
    (
        false,
        "no --mcpSessionEncryptionSeed: the controller uses its built-in default".into(),
    )
}

/// A pod: when it has the external processor, its seed is set and not a default.
pub fn extproc_seed(pod: &Value) -> (bool, String) {
    let containers = arr(pod, "/spec/containers")
        .iter()
        .chain(arr(pod, "/spec/initContainers"));
    for c in containers {
        if s(c, "/name") != EXTPROC {
            continue;
        }
        return match seed_arg(c) {
            None => (
                false,
                format!("{EXTPROC} has no seed flag: built-in default"),
            ),
            Some(v) if DEFAULT_SEEDS.contains(&v.as_str()) || v.is_empty() => (
                false,
                format!("{EXTPROC} runs with the public default seed `{v}`"),
            ),
            Some(v) => (
                true,
                format!("{EXTPROC} has a seed of {} characters", v.len()),
            ),
        };
    }
    (true, "no external processor in this pod".into())
}

/// Route entries of an Envoy `/config_dump` whose name mentions `route` (`namespace/name`, as
/// Envoy Gateway names them `httproute/<ns>/<name>/rule/<n>/…`), and whether any retries.
pub fn no_retry(config_dump: &Value, route: &str) -> Verdict {
    let mut found = 0;
    let mut retried = Vec::new();
    let needle = format!("httproute/{route}/");
    let mut stack = vec![config_dump];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                let is_route = m
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.starts_with(&needle))
                    && m.contains_key("route");
                if is_route {
                    found += 1;
                    let policy = v.pointer("/route/retry_policy");
                    let n = policy
                        .and_then(|p| p.get("num_retries"))
                        .and_then(Value::as_u64)
                        .unwrap_or(if policy.is_some() { 1 } else { 0 });
                    if n > 0 {
                        retried.push(format!(
                            "{} ({n} retries on {})",
                            s(v, "/name"),
                            policy.map_or("", |p| s(p, "/retry_on"))
                        ));
                    }
                }
                stack.extend(m.values());
            }
            Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
    match (found, retried.is_empty()) {
        (0, _) => Err(format!("no route of HTTPRoute {route} in the config dump")),
        (n, true) => Ok(format!("{n} route(s) of {route}, none retried")),
        (_, false) => Err(format!("retried: {}", retried.join("; "))),
    }
}

/// The Redis probe (`redis-cli -h <host> -p <port> ping` with a timeout) from another namespace:
/// it must not get `PONG`.
pub fn redis_refused(exit_ok: bool, output: &str) -> Verdict {
    if output.contains("PONG") {
        Err("another pod reached Redis and got PONG: the NetworkPolicy is not enforced".into())
    } else if exit_ok {
        Err(format!(
            "the probe succeeded without PONG (output {:?}); cannot tell",
            output.trim()
        ))
    } else {
        Ok(format!("refused or timed out ({})", output.trim()))
    }
}

/// A metrics page must answer with every expected metric name prefix.
pub fn metrics_answer(target: &MetricsTarget, status: u16, body: &str) -> Verdict {
    if status != 200 {
        return Err(format!(
            "{}:{}{} answered {status}",
            target.resource, target.port, target.path
        ));
    }
    let missing: Vec<&str> = target
        .expect
        .iter()
        .map(String::as_str)
        .filter(|p| {
            !body
                .lines()
                .any(|l| !l.starts_with('#') && l.starts_with(p))
        })
        .collect();
    if missing.is_empty() {
        let samples = body.lines().filter(|l| !l.starts_with('#')).count();
        Ok(format!(
            "{}:{}{}: {samples} samples",
            target.resource, target.port, target.path
        ))
    } else {
        Err(format!(
            "{}:{}{} answered without {}",
            target.resource,
            target.port,
            target.path,
            missing.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forged_headers() {
        assert!(forged_headers_refused(404, 0, false).is_ok());
        let err = forged_headers_refused(200, 1, true).unwrap_err();
        assert!(err.contains("with its token"), "{err}");
        assert!(forged_headers_refused(200, 2, false).is_err());
    }

    fn controller(args: &[&str], env: Value) -> Value {
        json!({"spec": {"template": {"spec": {"containers": [{"name": "ai-gateway-helm", "args": args, "env": env}]}}}})
    }

    #[test]
    fn controller_seed_from_a_secret() {
        let env = json!([{"name": "SEED", "valueFrom": {"secretKeyRef": {"name": "ai-gateway-mcp-session", "key": "seed"}}}]);
        let (ok, detail) = controller_seed(&controller(
            &["-logLevel=info", "--mcpSessionEncryptionSeed=$(SEED)"],
            env.clone(),
        ));
        assert!(ok, "{detail}");
        assert!(detail.contains("ai-gateway-mcp-session/seed"));
        // The chart at v0.4.0 renders no flag at all.
        assert!(!controller_seed(&controller(&["-logLevel=info"], env.clone())).0);
        assert!(
            !controller_seed(&controller(
                &["--mcpSessionEncryptionSeed=seed"],
                env.clone()
            ))
            .0
        );
        assert!(!controller_seed(&controller(&["--mcpSessionEncryptionSeed=hunter2"], env)).0);
        assert!(
            !controller_seed(&controller(
                &["--mcpSessionEncryptionSeed=$(SEED)"],
                json!([{"name": "SEED", "value": "x"}])
            ))
            .0
        );
    }

    #[test]
    fn extproc_seed_in_pods() {
        let pod = |args: Value| json!({"spec": {"containers": [{"name": "envoy"}], "initContainers": [{"name": EXTPROC, "args": args}]}});
        assert!(
            extproc_seed(&pod(json!([
                "-configPath",
                "/etc/x",
                "-mcpSessionEncryptionSeed",
                "3f9a"
            ])))
            .0
        );
        assert!(!extproc_seed(&pod(json!(["-mcpSessionEncryptionSeed", "seed"]))).0);
        assert!(!extproc_seed(&pod(json!(["-configPath", "/etc/x"]))).0);
        assert!(extproc_seed(&json!({"spec": {"containers": [{"name": "redis"}]}})).0);
    }

    #[test]
    fn retries_in_a_config_dump() {
        let dump = |retry: Value| {
            json!({"configs": [{"dynamic_route_configs": [{"route_config": {"virtual_hosts": [{"routes": [
                {"name": "httproute/envoy-ai-gateway-system/aiops/rule/0/match/0/aiops_example_com", "route": retry},
                {"name": "httproute/default/echo/rule/0/match/0/echo", "route": {"retry_policy": {"num_retries": 2, "retry_on": "reset"}}}
            ]}]}}]}]})
        };
        assert!(
            no_retry(
                &dump(json!({"cluster": "x"})),
                "envoy-ai-gateway-system/aiops"
            )
            .is_ok()
        );
        let err = no_retry(
            &dump(json!({"cluster": "x", "retry_policy": {"num_retries": 2, "retry_on": "reset"}})),
            "envoy-ai-gateway-system/aiops",
        )
        .unwrap_err();
        assert!(err.contains("2 retries on reset"), "{err}");
        assert!(no_retry(&dump(json!({})), "envoy-ai-gateway-system/other").is_err());
    }

    #[test]
    fn redis_probe() {
        assert!(
            redis_refused(
                false,
                "Could not connect to Redis at redis:6379: Connection timed out"
            )
            .is_ok()
        );
        assert!(redis_refused(true, "PONG\n").is_err());
        assert!(redis_refused(true, "").is_err());
    }

    #[test]
    fn metrics_pages() {
        let t = MetricsTarget {
            namespace: "envoy-ai-gateway-system".into(),
            resource: "deploy/ai-gateway".into(),
            port: 1064,
            path: "/metrics".into(),
            expect: vec!["gen_ai_".into()],
        };
        let page = "# HELP gen_ai_client_token_usage x\ngen_ai_client_token_usage_sum{gen_ai_request_model=\"gpt-4o\"} 42\n";
        assert!(metrics_answer(&t, 200, page).is_ok());
        assert!(metrics_answer(&t, 200, "# HELP gen_ai_client_token_usage x\n").is_err());
        assert!(metrics_answer(&t, 503, page).is_err());
    }
}
