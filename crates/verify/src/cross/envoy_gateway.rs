//! Envoy Gateway values the AI Gateway needs (the Backend API, the extension hooks and server),
//! and what verify can know about them.

use serde_json::Value;

use super::{AI_NS_DEFAULT, AIGW, Ctx, arr, s};

impl Ctx<'_> {
    /// Issue 3 of the seed README: AI Gateway only works if Envoy Gateway calls its extension
    /// server and serves the Backend API.
    pub(super) fn envoy_gateway_prerequisites(&mut self) {
        let first_ai = self.objs.iter().copied().find(|o| o.group() == AIGW);
        let ai_release = self.aigw.as_ref().map(|c| c.release);
        let Some(anchor) = first_ai.or(ai_release) else {
            return;
        };
        let ai_ns = self
            .aigw
            .as_ref()
            .map_or(AI_NS_DEFAULT.to_owned(), |c| c.namespace.clone());
        if self.aigw.is_none() {
            self.error(
                "aigw_controller_missing",
                anchor,
                "metadata.name",
                "AI Gateway resources are applied, but no HelmRelease installs the AI Gateway controller (`ai-gateway-helm`)".to_owned(),
                "add the `ai-gateway-helm` chart (v0.4.0) HelmRelease, with its CRD chart `ai-gateway-crds-helm`",
            );
        }
        let Some(eg) = &self.eg else {
            self.error(
                "eg_missing",
                anchor,
                "metadata.name",
                "AI Gateway resources are applied, but no HelmRelease installs Envoy Gateway (`gateway-helm`)".to_owned(),
                "install Envoy Gateway v1.6.7 with the AI Gateway extension values",
            );
            return;
        };
        let eg_release = eg.release;
        let eg_ns = eg.namespace.clone();
        let values = eg.values.clone();
        let base = "spec.values.config.envoyGateway";
        let cfg = values
            .pointer("/config/envoyGateway")
            .cloned()
            .unwrap_or(Value::Null);
        if self.eg_values_from() && cfg.is_null() {
            self.warning(
                "eg_values_unchecked",
                eg_release,
                "spec.valuesFrom",
                "Envoy Gateway values come from `valuesFrom`, which verify does not read; the AI Gateway prerequisites are not checked".to_owned(),
                "put the Envoy Gateway configuration in `spec.values`",
            );
            return;
        }
        if cfg.pointer("/extensionApis/enableBackend") != Some(&Value::Bool(true)) {
            self.error(
                "eg_backend_api",
                eg_release,
                &format!("{base}.extensionApis"),
                "Envoy Gateway does not enable the Backend API; every AI Gateway Backend is rejected (\"Backend is not enabled in Envoy Gateway Config\")".to_owned(),
                "set `config.envoyGateway.extensionApis.enableBackend: true` in the Envoy Gateway values",
            );
        }
        let mut missing = Vec::new();
        for part in ["listener", "route", "cluster", "secret"] {
            let p = format!("/extensionManager/hooks/xdsTranslator/translation/{part}/includeAll");
            if cfg.pointer(&p) != Some(&Value::Bool(true)) {
                missing.push(format!("translation.{part}.includeAll: true"));
            }
        }
        let post: Vec<&str> = arr(&cfg, "/extensionManager/hooks/xdsTranslator/post")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for hook in ["Translation", "Cluster", "Route"] {
            if !post.contains(&hook) {
                missing.push(format!("post: {hook}"));
            }
        }
        if !missing.is_empty() {
            self.error(
                "eg_extension_hooks",
                eg_release,
                &format!("{base}.extensionManager"),
                format!(
                    "Envoy Gateway's extensionManager hooks are incomplete (missing {}); the AI Gateway filter is never put in the chain, providers answer 401 while everything looks Accepted",
                    missing.join(", ")
                ),
                "copy the extensionManager block of AI Gateway v0.4.0's `manifests/envoy-gateway-values.yaml` (includeAll for listener/route/cluster/secret, post: [Translation, Cluster, Route])",
            );
        }
        let want_host = format!("ai-gateway-controller.{ai_ns}.svc.cluster.local");
        let host = s(&cfg, "/extensionManager/service/fqdn/hostname").unwrap_or_default();
        let port = cfg
            .pointer("/extensionManager/service/fqdn/port")
            .and_then(Value::as_i64);
        if host != want_host || port != Some(1063) {
            self.error(
                "eg_extension_service",
                eg_release,
                &format!("{base}.extensionManager.service.fqdn"),
                format!(
                    "Envoy Gateway calls its extension server at `{}:{}`, but the AI Gateway controller is `{want_host}:1063`",
                    if host.is_empty() { "<unset>" } else { host },
                    port.map_or("<unset>".to_owned(), |p| p.to_string())
                ),
                &format!("set `extensionManager.service.fqdn: {{hostname: {want_host}, port: 1063}}`"),
            );
        }
        if let Some(aigw) = &self.aigw {
            let configured =
                s(&aigw.values, "/envoyGateway/namespace").unwrap_or("envoy-gateway-system");
            if configured != eg_ns {
                let release = aigw.release;
                self.error(
                    "aigw_eg_namespace",
                    release,
                    "spec.values.envoyGateway.namespace",
                    format!(
                        "the AI Gateway chart grants InferencePool access to Envoy Gateway in namespace `{configured}`, but Envoy Gateway runs in `{eg_ns}`"
                    ),
                    &format!("set `envoyGateway.namespace: {eg_ns}` in the ai-gateway-helm values"),
                );
            }
        }
    }

    /// The Envoy Gateway HelmRelease also takes values from `valuesFrom` (ConfigMaps or Secrets
    /// verify does not read), so a setting missing from `spec.values` may still be set.
    pub(super) fn eg_values_from(&self) -> bool {
        self.eg.as_ref().is_some_and(|c| {
            c.release
                .value
                .pointer("/spec/valuesFrom")
                .is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty()))
        })
    }

    /// The deploy type is not in `spec.values` and may come from `valuesFrom`.
    pub(super) fn deploy_mode_unknown(&self) -> bool {
        self.eg_values_from()
            && self.eg.as_ref().is_some_and(|c| {
                c.values
                    .pointer("/config/envoyGateway/provider/kubernetes/deploy/type")
                    .is_none()
            })
    }

    /// Services the modelled charts create.
    pub(super) fn chart_service(&self, namespace: &str, name: &str) -> bool {
        let eg = self
            .eg
            .as_ref()
            .is_some_and(|c| c.namespace == namespace && name == "envoy-gateway");
        let ai = self
            .aigw
            .as_ref()
            .is_some_and(|c| c.namespace == namespace && name == "ai-gateway-controller");
        eg || ai
    }

    pub(super) fn deploy_mode(&self) -> &'static str {
        let gateway_ns = self.eg.as_ref().and_then(|c| {
            s(
                &c.values,
                "/config/envoyGateway/provider/kubernetes/deploy/type",
            )
        }) == Some("GatewayNamespace");
        if gateway_ns {
            "GatewayNamespace"
        } else {
            "ControllerNamespace"
        }
    }
}
