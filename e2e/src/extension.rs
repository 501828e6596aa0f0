//! The check behind "every AI resource Accepted, yet the provider answers 401": Envoy Gateway
//! must hand its xDS translation to the AI Gateway controller (the extension manager). Without
//! it the controller still accepts every resource, but the external processor is never put in
//! the filter chain: no credential is injected and no model header is set.
//!
//! What AI Gateway v0.4.0 requires of Envoy Gateway's configuration (its
//! `manifests/envoy-gateway-values.yaml`, which this repository renders into the Envoy Gateway
//! HelmRelease, see `ai-gateway-values.partial.yaml.j2`): `extensionApis.enableBackend`, the
//! `xdsTranslator` hooks with `includeAll` for listeners, routes, clusters and secrets and the
//! post hooks Translation, Cluster and Route, and the extension service
//! `ai-gateway-controller.<namespace>.svc.cluster.local:1063`. Envoy Gateway reads that from its
//! ConfigMap `envoy-gateway-config` (key `envoy-gateway.yaml`) at start; this repository rolls
//! its pods when the settings change with the annotation `ai-gateway/envoy-gateway-config`.
//!
//! Pure functions over object JSON, like [`crate::checks`]; `live` fetches the objects.

use serde_json::Value;

use crate::checks::Outcome;

/// The check group in the report.
pub const CHECK: &str = "Envoy Gateway extension";
/// Envoy Gateway's configuration: ConfigMap name and key.
pub const CONFIG_MAP: &str = "envoy-gateway-config";
pub const CONFIG_KEY: &str = "envoy-gateway.yaml";
/// The AI Gateway controller's Service and its extension-server (gRPC) port.
pub const CONTROLLER_SERVICE: &str = "ai-gateway-controller";
pub const EXTENSION_PORT: u64 = 1063;
/// The pod-template annotation this repository puts on envoy-gateway.
pub const ROLL_ANNOTATION: &str = "ai-gateway/envoy-gateway-config";

/// `ai-gateway-controller.<ns>.svc.cluster.local`.
pub fn controller_fqdn(ai_namespace: &str) -> String {
    format!("{CONTROLLER_SERVICE}.{ai_namespace}.svc.cluster.local")
}

fn restart_hint(eg_namespace: &str) -> String {
    format!(
        "check the Envoy Gateway HelmRelease values, then `kubectl -n {eg_namespace} rollout restart deployment/envoy-gateway`"
    )
}

/// Judge Envoy Gateway's ConfigMap (`None`: not found): every missing requirement is named.
pub fn config(config_map: Option<&Value>, eg_namespace: &str, ai_namespace: &str) -> Outcome {
    let subject = format!("ConfigMap {eg_namespace}/{CONFIG_MAP}");
    let fail = |detail: String| Outcome {
        check: CHECK,
        subject: subject.clone(),
        ok: false,
        detail,
    };
    let Some(config_map) = config_map else {
        return fail("not found: is Envoy Gateway installed in this namespace?".to_owned());
    };
    let Some(text) = config_map
        .get("data")
        .and_then(|data| data.get(CONFIG_KEY))
        .and_then(Value::as_str)
    else {
        return fail(format!("has no `{CONFIG_KEY}`"));
    };
    let config: Value = match serde_saphyr::from_str(text) {
        Ok(v) => v,
        Err(err) => return fail(format!("`{CONFIG_KEY}` is not YAML: {err}")),
    };
    let problems = problems(&config, ai_namespace);
    if problems.is_empty() {
        Outcome {
            check: CHECK,
            subject,
            ok: true,
            detail: format!(
                "extensionManager hooks set, service {}:{EXTENSION_PORT}",
                controller_fqdn(ai_namespace)
            ),
        }
    } else {
        fail(format!(
            "{} (expect the provider to answer 401 and no model routing while every resource is Accepted); {}",
            problems.join("; "),
            restart_hint(eg_namespace)
        ))
    }
}

/// What the EnvoyGateway configuration lacks for the AI Gateway.
pub fn problems(config: &Value, ai_namespace: &str) -> Vec<String> {
    let mut out = Vec::new();
    if config.pointer("/extensionApis/enableBackend") != Some(&Value::Bool(true)) {
        out.push("extensionApis.enableBackend is not true".to_owned());
    }
    let Some(manager) = config.get("extensionManager").filter(|m| m.is_object()) else {
        out.push("no extensionManager".to_owned());
        return out;
    };
    let xds = manager.pointer("/hooks/xdsTranslator");
    for kind in ["listener", "route", "cluster", "secret"] {
        let on = xds
            .and_then(|x| x.pointer(&format!("/translation/{kind}/includeAll")))
            .and_then(Value::as_bool)
            == Some(true);
        if !on {
            out.push(format!(
                "hooks.xdsTranslator.translation.{kind}.includeAll is not true"
            ));
        }
    }
    let post: Vec<&str> = xds
        .and_then(|x| x.get("post"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let missing: Vec<&str> = ["Translation", "Cluster", "Route"]
        .into_iter()
        .filter(|h| !post.contains(h))
        .collect();
    if !missing.is_empty() {
        out.push(format!(
            "hooks.xdsTranslator.post lacks {}",
            missing.join(", ")
        ));
    }
    let want = controller_fqdn(ai_namespace);
    let host = manager
        .pointer("/service/fqdn/hostname")
        .and_then(Value::as_str);
    let port = manager
        .pointer("/service/fqdn/port")
        .and_then(Value::as_u64);
    if host != Some(want.as_str()) || port != Some(EXTENSION_PORT) {
        out.push(format!(
            "service.fqdn is {}:{}, not {want}:{EXTENSION_PORT}",
            host.unwrap_or("(unset)"),
            port.map_or("(unset)".to_owned(), |p| p.to_string())
        ));
    }
    out
}

/// The controller's Service must exist and serve the extension port.
pub fn service(service: Option<&Value>, ai_namespace: &str) -> Outcome {
    let subject = format!("Service {ai_namespace}/{CONTROLLER_SERVICE}");
    let (ok, detail) = match service {
        None => (
            false,
            "not found: Envoy Gateway's extension manager has nothing to call".to_owned(),
        ),
        Some(svc) => {
            let serves = svc
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .is_some_and(|ports| {
                    ports
                        .iter()
                        .any(|p| p.get("port").and_then(Value::as_u64) == Some(EXTENSION_PORT))
                });
            if serves {
                (true, format!("serves port {EXTENSION_PORT}"))
            } else {
                (
                    false,
                    format!("does not serve port {EXTENSION_PORT} (the extension server)"),
                )
            }
        }
    };
    Outcome {
        check: CHECK,
        subject,
        ok,
        detail,
    }
}

/// An envoy-gateway pod must run with the extension settings: this repository's roll
/// annotation names the controller (a pod started before the AI Gateway was enabled has not).
pub fn pod(pod: &Value, eg_namespace: &str, ai_namespace: &str) -> Outcome {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let annotation = pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ROLL_ANNOTATION))
        .and_then(Value::as_str);
    let want = format!(
        "extension={}:{EXTENSION_PORT}",
        controller_fqdn(ai_namespace)
    );
    let (ok, detail) = match annotation {
        Some(a) if a.split(';').any(|part| part == want) => {
            (true, "started with the AI Gateway extension".to_owned())
        }
        Some(a) => (
            false,
            format!(
                "started with `{ROLL_ANNOTATION}: {a}`, expected it to contain `{want}`; {}",
                restart_hint(eg_namespace)
            ),
        ),
        None => (
            false,
            format!(
                "started without the AI Gateway's settings (no `{ROLL_ANNOTATION}` annotation); {}",
                restart_hint(eg_namespace)
            ),
        ),
    };
    Outcome {
        check: CHECK,
        subject: format!("Pod {eg_namespace}/{name}"),
        ok,
        detail,
    }
}

/// Is this pod Envoy Gateway's controller (not one of its Envoy proxies)?
pub fn is_envoy_gateway_pod(pod: &Value) -> bool {
    pod.pointer("/metadata/labels/control-plane")
        .and_then(Value::as_str)
        == Some("envoy-gateway")
}

/// Every outcome of the check, from what was fetched.
pub fn judge(
    config_map: Option<&Value>,
    controller_service: Option<&Value>,
    pods: &[Value],
    eg_namespace: &str,
    ai_namespace: &str,
) -> Vec<Outcome> {
    let mut out = vec![
        config(config_map, eg_namespace, ai_namespace),
        service(controller_service, ai_namespace),
    ];
    let eg_pods: Vec<&Value> = pods.iter().filter(|p| is_envoy_gateway_pod(p)).collect();
    if eg_pods.is_empty() {
        out.push(Outcome {
            check: CHECK,
            subject: format!("Pod {eg_namespace}/envoy-gateway-*"),
            ok: false,
            detail: "no envoy-gateway pod (label control-plane=envoy-gateway) found".to_owned(),
        });
    }
    out.extend(
        eg_pods
            .into_iter()
            .map(|p| pod(p, eg_namespace, ai_namespace)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GOOD: &str = "\
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyGateway
extensionApis:
  enableEnvoyPatchPolicy: true
  enableBackend: true
extensionManager:
  failOpen: true
  hooks:
    xdsTranslator:
      translation:
        listener: {includeAll: true}
        route: {includeAll: true}
        cluster: {includeAll: true}
        secret: {includeAll: true}
      post: [Translation, Cluster, Route]
  service:
    fqdn:
      hostname: ai-gateway-controller.envoy-ai-gateway-system.svc.cluster.local
      port: 1063
";

    fn cm(text: &str) -> Value {
        json!({"metadata": {"name": CONFIG_MAP}, "data": {CONFIG_KEY: text}})
    }

    #[test]
    fn accepts_what_v0_4_0_requires() {
        let o = config(Some(&cm(GOOD)), "network", "envoy-ai-gateway-system");
        assert!(o.ok, "{o}");
    }

    #[test]
    fn names_every_missing_requirement() {
        let bad = GOOD
            .replace("enableBackend: true", "enableBackend: false")
            .replace("secret: {includeAll: true}", "secret: {includeAll: false}")
            .replace("post: [Translation, Cluster, Route]", "post: [Translation]")
            .replace("port: 1063", "port: 1064");
        let o = config(Some(&cm(&bad)), "network", "envoy-ai-gateway-system");
        assert!(!o.ok);
        for part in [
            "enableBackend is not true",
            "translation.secret.includeAll is not true",
            "post lacks Cluster, Route",
            "service.fqdn is ai-gateway-controller.envoy-ai-gateway-system.svc.cluster.local:1064",
            "rollout restart deployment/envoy-gateway",
        ] {
            assert!(o.detail.contains(part), "{part} not in {}", o.detail);
        }
        // The service must name the controller in the AI Gateway's own namespace.
        let o = config(Some(&cm(GOOD)), "network", "other");
        assert!(
            o.detail
                .contains("not ai-gateway-controller.other.svc.cluster.local:1063"),
            "{o}"
        );
        // Envoy Gateway without any AI settings: the classic 401.
        let plain = "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: EnvoyGateway\nprovider: {type: Kubernetes}\n";
        let o = config(Some(&cm(plain)), "network", "envoy-ai-gateway-system");
        assert!(
            o.detail
                .starts_with("extensionApis.enableBackend is not true; no extensionManager"),
            "{o}"
        );
        assert!(!config(None, "network", "x").ok);
        assert!(!config(Some(&json!({"data": {}})), "network", "x").ok);
        assert!(!config(Some(&cm("a: [")), "network", "x").ok);
    }

    #[test]
    fn controller_service_must_serve_the_extension_port() {
        let svc =
            |port| json!({"spec": {"ports": [{"name": "http", "port": 9443}, {"port": port}]}});
        assert!(service(Some(&svc(1063)), "ns").ok);
        assert!(!service(Some(&svc(1064)), "ns").ok);
        assert!(!service(None, "ns").ok);
    }

    #[test]
    fn envoy_gateway_pods_must_have_started_with_the_extension() {
        let ns = "envoy-ai-gateway-system";
        let p = |annotation: Option<&str>| {
            let mut v = json!({"metadata": {"name": "envoy-gateway-abc", "labels": {"control-plane": "envoy-gateway"}, "annotations": {}}});
            if let Some(a) = annotation {
                v["metadata"]["annotations"][ROLL_ANNOTATION] = json!(a);
            }
            v
        };
        let good = format!(
            "extension={}:1063;failOpen=true;backend=on;rateLimit=off",
            controller_fqdn(ns)
        );
        let proxy = json!({"metadata": {"name": "envoy-network-x", "labels": {"app.kubernetes.io/component": "proxy"}}});
        let outcomes = judge(None, None, &[p(Some(&good)), proxy.clone()], "network", ns);
        assert_eq!(
            outcomes.len(),
            3,
            "the proxy pod is not judged: {outcomes:#?}"
        );
        assert!(outcomes[2].ok, "{}", outcomes[2]);
        assert!(!pod(&p(None), "network", ns).ok);
        assert!(!pod(&p(Some("extension=elsewhere:1063")), "network", ns).ok);
        let none = judge(None, None, &[proxy], "network", ns);
        assert!(
            none[2].detail.contains("no envoy-gateway pod"),
            "{}",
            none[2]
        );
    }
}
