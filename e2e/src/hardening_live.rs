//! The live half of [`crate::hardening`]: it only acts on the cluster and collects observations;
//! every verdict comes from a pure function there.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::hardening::{self, CONTROLLER, MetricsTarget, PROBE_IMAGE};
use crate::http::{self, Endpoint};
use crate::traffic::Verdict;

async fn kubectl(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let out = tokio::process::Command::new("kubectl")
        .args(args)
        .output()
        .await
        .context("cannot run kubectl")?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

async fn kubectl_ok(args: &[&str]) -> anyhow::Result<String> {
    let (ok, text) = kubectl(args).await?;
    if !ok {
        bail!("`kubectl {}` failed: {}", args.join(" "), text.trim());
    }
    Ok(text)
}

/// `kubectl port-forward` to `resource`'s `port` on a free local port, for as long as `f` runs.
async fn port_forwarded<T>(
    namespace: &str,
    resource: &str,
    port: u16,
    f: impl AsyncFnOnce(Endpoint) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut child = tokio::process::Command::new("kubectl")
        .args([
            "-n",
            namespace,
            "port-forward",
            resource,
            &format!(":{port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run kubectl port-forward")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    // "Forwarding from 127.0.0.1:43210 -> 1064"
    let local = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:")
                && let Some((p, _)) = rest.split_once(' ')
            {
                return Ok::<_, anyhow::Error>(p.parse::<u16>()?);
            }
        }
        bail!("port-forward ended before forwarding")
    })
    .await
    .context("port-forward did not start in 30s")??;
    let result = f(Endpoint::parse(&format!("http://127.0.0.1:{local}"), None)?).await;
    let _ = child.kill().await;
    result
}

/// Makes Envoy Gateway translate the Gateway again (a new annotation value changes the object)
/// and gives the new configuration 20 s to reach Envoy.
async fn retranslate(namespace: &str, gateway_name: &str, suffix: &str) -> anyhow::Result<()> {
    let stamp = format!("e2e.aiops/forged-headers={}{suffix}", std::process::id());
    kubectl_ok(&[
        "-n",
        namespace,
        "annotate",
        "gateway",
        gateway_name,
        &stamp,
        "--overwrite",
    ])
    .await?;
    tokio::time::sleep(Duration::from_secs(20)).await;
    Ok(())
}

/// Forged MCP routing headers while the controller is down (Envoy Gateway then serves its own
/// translation, failOpen): scale the controller to 0, make Envoy Gateway translate again, send
/// one forged request per backend, look at the MCP mocks' logs, and bring the controller back.
pub async fn forged_mcp_headers(
    namespace: &str,
    gateway_name: &str,
    gateway: &Endpoint,
    mcp_admins: &[Endpoint],
    route: &str,
    backends: &[String],
) -> anyhow::Result<Verdict> {
    let deploy = format!("deploy/{CONTROLLER}");
    kubectl_ok(&["-n", namespace, "scale", &deploy, "--replicas=0"]).await?;
    let _ = kubectl(&[
        "-n",
        namespace,
        "wait",
        "--for=delete",
        "pod",
        "-l",
        "app.kubernetes.io/name=ai-gateway-helm",
        "--timeout=120s",
    ])
    .await;
    retranslate(namespace, gateway_name, "").await?;
    for admin in mcp_admins {
        let _ = http::send(admin, "DELETE", "/_mock/requests", &[], Vec::new()).await;
    }
    let mut statuses = Vec::new();
    for backend in backends {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec();
        let headers = [
            (hardening::MCP_ROUTING_HEADERS[0], backend.as_str()),
            (hardening::MCP_ROUTING_HEADERS[1], route),
            ("content-type", "application/json"),
        ];
        let response = http::send(gateway, "POST", "/e2e-forged", &headers, body).await?;
        statuses.push(response.status);
    }
    let mut recorded = 0;
    let mut token_seen = false;
    for admin in mcp_admins {
        let log = crate::mock::fetch_recorded(admin).await?;
        recorded += log.len();
        token_seen |= log.iter().any(|r| r.header("authorization").is_some());
    }
    // Back to normal before judging, whatever happened.
    kubectl_ok(&["-n", namespace, "scale", &deploy, "--replicas=1"]).await?;
    kubectl_ok(&[
        "-n",
        namespace,
        "rollout",
        "status",
        &deploy,
        "--timeout=180s",
    ])
    .await?;
    retranslate(namespace, gateway_name, "-done").await?;
    let status = statuses.iter().copied().max().unwrap_or(0);
    Ok(
        hardening::forged_headers_refused(status, recorded, token_seen)
            .map(|d| format!("{d} (controller scaled to 0 meanwhile; statuses {statuses:?})")),
    )
}

/// The controller Deployment and every pod of the namespace, judged by their seed.
pub async fn session_seed(client: &kube::Client, namespace: &str) -> anyhow::Result<Verdict> {
    let deployments = crate::live::list(client, "apps/v1", "Deployment", namespace).await?;
    let controller = deployments
        .iter()
        .find(|d| d.pointer("/metadata/name").and_then(Value::as_str) == Some(CONTROLLER))
        .context("no controller Deployment")?;
    let (ok, detail) = hardening::controller_seed(controller);
    if !ok {
        return Ok(Err(format!("controller: {detail}")));
    }
    let pods = crate::live::list(client, "v1", "Pod", namespace).await?;
    let mut with_extproc = 0;
    for pod in &pods {
        let (ok, d) = hardening::extproc_seed(pod);
        if !ok {
            return Ok(Err(d));
        }
        with_extproc += usize::from(!d.starts_with("no external processor"));
    }
    if with_extproc == 0 {
        return Ok(Err("no pod runs the external processor".into()));
    }
    Ok(Ok(format!(
        "controller: {detail}; {with_extproc} external processor(s) with their own seed"
    )))
}

/// The outer gateways' Envoy config: no retry policy on the routes of `route`.
pub async fn no_retry(route: &str, envoys: &[(String, String)]) -> anyhow::Result<Verdict> {
    let mut details = Vec::new();
    for (ns, deploy) in envoys {
        let dump: Value = port_forwarded(ns, &format!("deploy/{deploy}"), 19000, async |ep| {
            let r = http::send(
                &ep,
                "GET",
                "/config_dump?resource=dynamic_route_configs",
                &[],
                Vec::new(),
            )
            .await?;
            Ok(serde_json::from_slice(&r.body)?)
        })
        .await?;
        match hardening::no_retry(&dump, route) {
            Ok(d) => details.push(format!("{ns}/{deploy}: {d}")),
            Err(e) => return Ok(Err(format!("{ns}/{deploy}: {e}"))),
        }
    }
    Ok(Ok(details.join("; ")))
}

/// A throwaway pod in `default` tries Redis.
pub async fn redis_isolated(host: &str, port: u16) -> anyhow::Result<Verdict> {
    let name = format!("e2e-redis-probe-{}", std::process::id());
    let port = port.to_string();
    let (ok, output) = kubectl(&[
        "-n",
        "default",
        "run",
        &name,
        "--rm",
        "-i",
        "--restart=Never",
        "--quiet",
        &format!("--image={PROBE_IMAGE}"),
        "--command",
        "--",
        "timeout",
        "10",
        "redis-cli",
        "-h",
        host,
        "-p",
        &port,
        "ping",
    ])
    .await?;
    Ok(hardening::redis_refused(ok, &output))
}

/// Each metrics endpoint through a port-forward.
pub async fn metrics(targets: &[MetricsTarget]) -> anyhow::Result<Verdict> {
    let mut details = Vec::new();
    for t in targets {
        let (status, body) = port_forwarded(&t.namespace, &t.resource, t.port, async |ep| {
            let r = http::send(&ep, "GET", &t.path, &[], Vec::new()).await?;
            Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
        })
        .await?;
        match hardening::metrics_answer(t, status, &body) {
            Ok(d) => details.push(d),
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(details.join("; ")))
}
