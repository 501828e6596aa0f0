//! Issue 13, operating the AI Gateway: seeing what it does, and taking it away cleanly.
//!
//! - `aigw_metrics_unscraped`: the tree scrapes metrics with Prometheus Operator monitors, but not
//!   those of an AI gateway's Envoy pods (`/stats/prometheus`), their external processor (the
//!   GenAI token and latency metrics) or the AI Gateway controller.
//! - `aigw_removal_order`: removing the AI Gateway deletes the controller together with the
//!   objects that carry its finalizer, which then hang in Terminating.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{AIGW, Ctx, arr, labels_match, ns, s};
use crate::kustomize::Obj;

const MONITORING: &str = "monitoring.coreos.com";
/// Kinds the AI Gateway v0.4.0 controller puts its finalizer on (internal/controller).
const FINALIZED: [&str; 3] = [
    "AIGatewayRoute",
    "AIServiceBackend",
    "BackendSecurityPolicy",
];

/// Whether a monitor in namespace `monitor_ns` with this `namespaceSelector` looks into `target`.
fn monitor_namespace(monitor_ns: &str, selector: Option<&Value>, target: &str) -> bool {
    match selector {
        None => monitor_ns == target,
        Some(sel) => {
            sel.get("any").and_then(Value::as_bool) == Some(true)
                || arr(sel, "/matchNames")
                    .iter()
                    .any(|n| n.as_str() == Some(target))
        }
    }
}

impl<'a> Ctx<'a> {
    /// The endpoint ports of the monitors of `kind` that select pods (or Services) in `namespace`
    /// with `labels`.
    fn scraped_ports(&self, kind: &str, namespace: &str, labels: &Value) -> Vec<String> {
        let endpoints = if kind == "PodMonitor" {
            "/spec/podMetricsEndpoints"
        } else {
            "/spec/endpoints"
        };
        self.all(MONITORING, kind)
            .iter()
            .filter(|m| {
                monitor_namespace(ns(m), m.value.pointer("/spec/namespaceSelector"), namespace)
                    && labels_match(m.value.pointer("/spec/selector/matchLabels"), Some(labels))
            })
            .flat_map(|m| arr(&m.value, endpoints))
            .filter_map(|e| s(e, "/port").map(str::to_owned))
            .collect()
    }

    pub(super) fn metrics_unscraped(&mut self) {
        let monitored = !self.all(MONITORING, "PodMonitor").is_empty()
            || !self.all(MONITORING, "ServiceMonitor").is_empty();
        if !monitored {
            return; // This tree does not scrape with Prometheus Operator at all.
        }
        // Where the Envoy pods run depends on the deploy mode, which `valuesFrom` may set.
        let pods_known = !self.deploy_mode_unknown();
        let gateway_ns_mode = self.deploy_mode() == "GatewayNamespace";
        let eg_ns = self.eg.as_ref().map(|c| c.namespace.clone());
        let mut gateways: BTreeMap<(String, String), &'a Obj> = BTreeMap::new();
        for route in self.all(AIGW, "AIGatewayRoute") {
            for gw in self.parent_gateways(route) {
                gateways.insert((ns(gw).to_owned(), gw.name().to_owned()), gw);
            }
        }
        for ((gns, gname), gw) in gateways.into_iter().filter(|_| pods_known) {
            let Some(pod_ns) = (if gateway_ns_mode {
                Some(gns.clone())
            } else {
                eg_ns.clone()
            }) else {
                continue;
            };
            // The labels Envoy Gateway v1.6.7 puts on a Gateway's Envoy pods.
            let labels = json!({
                "app.kubernetes.io/name": "envoy",
                "app.kubernetes.io/component": "proxy",
                "app.kubernetes.io/managed-by": "envoy-gateway",
                "gateway.envoyproxy.io/owning-gateway-name": gname,
                "gateway.envoyproxy.io/owning-gateway-namespace": gns,
            });
            let ports = self.scraped_ports("PodMonitor", &pod_ns, &labels);
            let missing: Vec<&str> = [
                ("metrics", "Envoy's /stats/prometheus"),
                ("aigw-metrics", "the external processor's GenAI metrics"),
            ]
            .iter()
            .filter(|(p, _)| !ports.iter().any(|x| x == p))
            .map(|(_, what)| *what)
            .collect();
            if !missing.is_empty() {
                self.error(
                    "aigw_metrics_unscraped",
                    gw,
                    "metadata.name",
                    format!(
                        "the tree scrapes metrics with Prometheus Operator monitors, but none collects {} from the Envoy pods of AI gateway {gns}/{gname} (namespace `{pod_ns}`): token usage per model and per client is invisible",
                        missing.join(" or ")
                    ),
                    &format!(
                        "add a PodMonitor in `{pod_ns}` selecting app.kubernetes.io/component: proxy, app.kubernetes.io/name: envoy, gateway.envoyproxy.io/owning-gateway-name: {gname}, with endpoints `metrics` (path /stats/prometheus) and `aigw-metrics` (path /metrics)"
                    ),
                );
            }
        }
        let Some(aigw) = &self.aigw else { return };
        let release = aigw.release;
        let chart_ns = aigw.namespace.clone();
        let release_name = s(&release.value, "/spec/releaseName")
            .map(str::to_owned)
            .unwrap_or_else(|| match s(&release.value, "/spec/targetNamespace") {
                Some(t) => format!("{t}-{}", release.name()),
                None => release.name().to_owned(),
            });
        let labels = json!({
            "app.kubernetes.io/name": "ai-gateway-helm",
            "app.kubernetes.io/instance": release_name,
        });
        let ports = self.scraped_ports("ServiceMonitor", &chart_ns, &labels);
        if !ports.iter().any(|p| p == "http-metrics") {
            self.error(
                "aigw_metrics_unscraped",
                release,
                "metadata.name",
                format!(
                    "the tree scrapes metrics with Prometheus Operator monitors, but none collects the AI Gateway controller's (Service ai-gateway-controller, port http-metrics, namespace `{chart_ns}`)"
                ),
                &format!(
                    "add a ServiceMonitor in `{chart_ns}` selecting app.kubernetes.io/name: ai-gateway-helm, app.kubernetes.io/instance: {release_name} with endpoint port `http-metrics`"
                ),
            );
        }
    }

    pub(super) fn removal_order(&mut self) {
        let Some(release) = self.aigw.as_ref().map(|c| c.release) else {
            return;
        };
        let Some((controller_ks, ks_obj)) = self.owner_ks(release) else {
            return;
        };
        let policy = s(&ks_obj.value, "/spec/deletionPolicy").unwrap_or("MirrorPrune");
        let prune = ks_obj
            .value
            .pointer("/spec/prune")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let deletes = match policy {
            "Orphan" => false,
            "MirrorPrune" => prune,
            _ => true,
        };
        if !deletes {
            return;
        }
        // Objects with the controller's finalizer that another Kustomization deletes meanwhile.
        let mut finalized: Vec<String> = Vec::new();
        for kind in FINALIZED {
            for o in self.all(AIGW, kind) {
                if let Some((owner, owner_obj)) = self.owner_ks(o)
                    && owner != controller_ks
                {
                    let text = format!(
                        "{kind} {}/{} (Kustomization {}/{})",
                        ns(o),
                        o.name(),
                        ns(owner_obj),
                        owner_obj.name()
                    );
                    finalized.push(text);
                }
            }
        }
        if finalized.is_empty() {
            return;
        }
        let shown: Vec<String> = finalized.iter().take(3).cloned().collect();
        let more = finalized.len().saturating_sub(shown.len());
        self.error(
            "aigw_removal_order",
            ks_obj,
            "metadata.name",
            format!(
                "Kustomization {}/{} deletes the AI Gateway controller when it is removed, at the same time as the objects carrying the controller's finalizer ({}{}): if the controller goes first they hang in Terminating, and its filter-config Secret (every provider key) is left behind",
                ns(ks_obj),
                ks_obj.name(),
                shown.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            ),
            "set `deletionPolicy: Orphan` on this Kustomization (the controller stays until you remove it by hand, after the rest is gone; docs/ai-gateway.md \"Disabling\"), or remove the AI Gateway objects before the controller",
        );
    }
}
