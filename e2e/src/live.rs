//! The verification checks against a live cluster (the current kubeconfig), with the kube
//! crate. Only fetching happens here; every verdict comes from [`crate::checks`].

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::{Client, discovery};
use serde_json::Value;

use crate::checks::{self, Outcome};
use crate::gateway::GatewayView;
use crate::plan::{self, CheckSpec};
use crate::rendered::Tree;

/// Namespace of the AI Gateway when there is no rendered tree to say otherwise.
pub const DEFAULT_NAMESPACE: &str = "envoy-ai-gateway-system";

pub async fn client() -> anyhow::Result<Client> {
    Client::try_default()
        .await
        .context("cannot load a kubeconfig (set KUBECONFIG or ~/.kube/config)")
}

fn gvk(api_version: &str, kind: &str) -> GroupVersionKind {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, kind)
}

/// List objects of one kind in one namespace as JSON.
pub async fn list(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: &str,
) -> anyhow::Result<Vec<Value>> {
    let (resource, _caps) = discovery::pinned_kind(client, &gvk(api_version, kind))
        .await
        .with_context(|| format!("the cluster does not serve {kind} ({api_version})"))?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let list = api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("cannot list {kind} in {namespace}"))?;
    Ok(list
        .items
        .into_iter()
        .map(|item| {
            let mut value = serde_json::to_value(item).unwrap_or(Value::Null);
            value["kind"] = Value::String(kind.to_owned());
            value
        })
        .collect())
}

fn rule_for(kind: &str) -> fn(&Value) -> (bool, String) {
    match kind {
        "Kustomization" => checks::kustomization_ready,
        "Gateway" => checks::gateway_programmed,
        "Pod" => checks::pod_running,
        "BackendTLSPolicy" => checks::backend_tls_policy,
        "SecurityPolicy" | "BackendTrafficPolicy" | "ClientTrafficPolicy" => {
            checks::policy_accepted
        }
        _ => checks::ai_accepted,
    }
}

/// Run check specs; a kind the cluster does not serve is a failed check, not an abort.
pub async fn run_checks(client: &Client, specs: &[CheckSpec]) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for spec in specs {
        match list(client, spec.api_version, spec.kind, &spec.namespace).await {
            Ok(live) => outcomes.extend(checks::judge(
                spec.check,
                &spec.expected,
                &live,
                rule_for(spec.kind),
            )),
            Err(err) => outcomes.push(Outcome {
                check: spec.check,
                subject: format!("{} in {}", spec.kind, spec.namespace),
                ok: false,
                detail: format!("{err:#}"),
            }),
        }
    }
    outcomes
}

/// What `cargo xtask ai-gateway status` checks, read from the rendered tree once.
pub struct StatusPlan {
    pub specs: Vec<CheckSpec>,
    /// Namespace of Envoy Gateway (its `gateway-helm` HelmRelease), for the extension check.
    pub eg_namespace: String,
    /// Namespace of the AI Gateway's own objects.
    pub ai_namespace: String,
}

/// The plan of `status`: from the rendered tree at `rendered` when there is one (so missing
/// objects are caught; Envoy Gateway's namespace from the HelmRelease of the `gateway-helm`
/// chart), else everything found in this repository's default namespaces.
pub fn status_plan(rendered: &Path) -> Result<StatusPlan, String> {
    let Ok(tree) = Tree::load(rendered) else {
        return Ok(StatusPlan {
            specs: default_status_specs(),
            eg_namespace: "network".to_owned(),
            ai_namespace: DEFAULT_NAMESPACE.to_owned(),
        });
    };
    let view = GatewayView::from_tree(&tree)?;
    let ordered = tree.kustomizations_in_order()?;
    let own: Vec<_> = ordered
        .into_iter()
        .filter(|ks| ks.namespace == view.namespace)
        .collect();
    let eg_namespace = tree
        .helm_charts()
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.url.ends_with("/gateway-helm"))
        .map_or_else(|| "network".to_owned(), |chart| chart.namespace);
    Ok(StatusPlan {
        specs: plan::check_specs(&tree, &view, &own),
        eg_namespace,
        ai_namespace: view.namespace,
    })
}

/// The checks of [`status_plan`].
pub fn status_specs(rendered: &Path) -> Result<Vec<CheckSpec>, String> {
    status_plan(rendered).map(|p| p.specs)
}

/// Without a rendered tree: every object of the checked kinds in the default namespace.
fn default_status_specs() -> Vec<CheckSpec> {
    let ns = DEFAULT_NAMESPACE.to_owned();
    let spec = |check, api_version, kind| CheckSpec {
        check,
        api_version,
        kind,
        namespace: ns.clone(),
        expected: Vec::new(),
    };
    vec![
        spec(
            "Kustomizations Ready",
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
        ),
        spec(
            "AI resources Accepted",
            "aigateway.envoyproxy.io/v1alpha1",
            "AIGatewayRoute",
        ),
        spec(
            "AI resources Accepted",
            "aigateway.envoyproxy.io/v1alpha1",
            "AIServiceBackend",
        ),
        spec(
            "AI resources Accepted",
            "aigateway.envoyproxy.io/v1alpha1",
            "BackendSecurityPolicy",
        ),
        spec(
            "Gateway Programmed",
            "gateway.networking.k8s.io/v1",
            "Gateway",
        ),
        spec("Pods Running", "v1", "Pod"),
        spec(
            "BackendTLSPolicies present",
            "gateway.networking.k8s.io/v1",
            "BackendTLSPolicy",
        ),
    ]
}

/// The Envoy Gateway extension check ([`crate::extension`]): fetch its ConfigMap, the
/// controller's Service and the envoy-gateway pods, then judge them.
pub async fn extension_checks(
    client: &Client,
    eg_namespace: &str,
    ai_namespace: &str,
) -> Vec<Outcome> {
    let named = |items: Vec<Value>, name: &str| {
        items
            .into_iter()
            .find(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
    };
    let fetch_failed = |what: &str, err: anyhow::Error| Outcome {
        check: crate::extension::CHECK,
        subject: what.to_owned(),
        ok: false,
        detail: format!("{err:#}"),
    };
    let mut out = Vec::new();
    let config_map = match list(client, "v1", "ConfigMap", eg_namespace).await {
        Ok(items) => named(items, crate::extension::CONFIG_MAP),
        Err(err) => return vec![fetch_failed(&format!("ConfigMap in {eg_namespace}"), err)],
    };
    let service = match list(client, "v1", "Service", ai_namespace).await {
        Ok(items) => named(items, crate::extension::CONTROLLER_SERVICE),
        Err(err) => {
            out.push(fetch_failed(&format!("Service in {ai_namespace}"), err));
            None
        }
    };
    let pods = match list(client, "v1", "Pod", eg_namespace).await {
        Ok(items) => items,
        Err(err) => {
            out.push(fetch_failed(&format!("Pod in {eg_namespace}"), err));
            Vec::new()
        }
    };
    out.extend(crate::extension::judge(
        config_map.as_ref(),
        service.as_ref(),
        &pods,
        eg_namespace,
        ai_namespace,
    ));
    out
}

/// Poll a Flux Kustomization until it is Ready or `timeout` passes.
pub async fn wait_kustomization(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<String, String> {
    let start = Instant::now();
    let mut last = "not found yet".to_owned();
    while start.elapsed() < timeout {
        if let Ok(items) = list(
            client,
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            namespace,
        )
        .await
            && let Some(object) = items
                .iter()
                .find(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
        {
            let (ok, detail) = checks::kustomization_ready(object);
            if ok {
                return Ok(detail);
            }
            last = detail;
        }
        tokio::time::sleep(Duration::from_secs(5).min(timeout.saturating_sub(start.elapsed())))
            .await;
    }
    Err(format!(
        "Kustomization {namespace}/{name} not Ready after {}s: {last}",
        timeout.as_secs()
    ))
}
