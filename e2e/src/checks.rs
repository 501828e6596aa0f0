//! The plan's "Verification Commands" as pure functions over object JSON.
//!
//! `kubectl get ks`, `get aigatewayroutes,aiservicebackends,backendsecuritypolicies`,
//! `get gateways`, `get pods`, `get backendtlspolicies` become: fetch the objects (the live
//! module does that with the kube crate), then judge each one here. Expected objects come from
//! the rendered tree, so a resource that was rendered but never reached the cluster fails too.

use std::fmt;

use serde_json::Value;

/// One line of the verification report.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The check group, e.g. `Kustomization Ready`.
    pub check: &'static str,
    /// `Kind namespace/name`.
    pub subject: String,
    pub ok: bool,
    pub detail: String,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "[{mark}] {}: {}", self.subject, self.detail)
    }
}

/// An object the rendered tree says should exist.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl Expected {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    fn subject(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

fn conditions(object: &Value) -> &[Value] {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn condition<'a>(conditions: &'a [Value], kind: &str) -> Option<&'a Value> {
    conditions
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn is_true(condition: Option<&Value>) -> bool {
    condition
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
}

fn reason_message(condition: Option<&Value>) -> String {
    let Some(c) = condition else {
        return "no such condition yet".to_owned();
    };
    let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
    let message = c.get("message").and_then(Value::as_str).unwrap_or("");
    match (reason.is_empty(), message.is_empty()) {
        (false, false) => format!("{reason}: {message}"),
        (false, true) => reason.to_owned(),
        (true, false) => message.to_owned(),
        (true, true) => "no reason given".to_owned(),
    }
}

fn name_of(object: &Value) -> (&str, &str) {
    let ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    (ns, name)
}

fn stale(object: &Value, condition: Option<&Value>) -> bool {
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let observed = condition
        .and_then(|c| c.get("observedGeneration"))
        .and_then(Value::as_i64)
        .or_else(|| {
            object
                .pointer("/status/observedGeneration")
                .and_then(Value::as_i64)
        });
    matches!((generation, observed), (Some(g), Some(o)) if o < g)
}

/// Flux Kustomization: `Ready=True` for the current generation.
pub fn kustomization_ready(object: &Value) -> (bool, String) {
    let ready = condition(conditions(object), "Ready");
    if object.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return (false, "suspended".to_owned());
    }
    if is_true(ready) && !stale(object, ready) {
        (true, format!("Ready ({})", reason_message(ready)))
    } else if stale(object, ready) {
        (
            false,
            "not reconciled at the current generation yet".to_owned(),
        )
    } else {
        (false, format!("not Ready ({})", reason_message(ready)))
    }
}

/// AI Gateway resources (AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy, MCPRoute):
/// the controller sets `Accepted=True`, or `NotAccepted=True` with the reason.
pub fn ai_accepted(object: &Value) -> (bool, String) {
    let conditions = conditions(object);
    let not_accepted = condition(conditions, "NotAccepted");
    if is_true(not_accepted) {
        return (
            false,
            format!("NotAccepted ({})", reason_message(not_accepted)),
        );
    }
    let accepted = condition(conditions, "Accepted");
    if is_true(accepted) {
        (true, "Accepted".to_owned())
    } else {
        (
            false,
            format!("not Accepted ({})", reason_message(accepted)),
        )
    }
}

/// Gateway API Gateway: `Programmed=True` (which implies an address and a ready proxy).
pub fn gateway_programmed(object: &Value) -> (bool, String) {
    let programmed = condition(conditions(object), "Programmed");
    if is_true(programmed) {
        let address = object
            .pointer("/status/addresses/0/value")
            .and_then(Value::as_str)
            .map(|a| format!(" at {a}"))
            .unwrap_or_default();
        (true, format!("Programmed{address}"))
    } else {
        (
            false,
            format!("not Programmed ({})", reason_message(programmed)),
        )
    }
}

/// A pod: `Running` with every container ready (or `Succeeded`, for jobs).
pub fn pod_running(object: &Value) -> (bool, String) {
    let phase = object
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Unknown");
    if phase == "Succeeded" {
        return (true, "Succeeded".to_owned());
    }
    let statuses = object
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let waiting: Vec<String> = statuses
        .iter()
        .filter(|s| s.get("ready").and_then(Value::as_bool) != Some(true))
        .map(|s| {
            let name = s.get("name").and_then(Value::as_str).unwrap_or("?");
            let reason = s
                .pointer("/state/waiting/reason")
                .or_else(|| s.pointer("/state/terminated/reason"))
                .and_then(Value::as_str)
                .unwrap_or("not ready");
            format!("{name}: {reason}")
        })
        .collect();
    if phase == "Running" && waiting.is_empty() && !statuses.is_empty() {
        let restarts: i64 = statuses
            .iter()
            .filter_map(|s| s.get("restartCount").and_then(Value::as_i64))
            .sum();
        (
            true,
            format!(
                "Running, {} container(s) ready, {restarts} restart(s)",
                statuses.len()
            ),
        )
    } else if waiting.is_empty() {
        (false, format!("phase {phase}"))
    } else {
        (false, format!("phase {phase}; {}", waiting.join(", ")))
    }
}

/// BackendTLSPolicy: present; if the gateway reported on it, every ancestor `Accepted=True`.
pub fn backend_tls_policy(object: &Value) -> (bool, String) {
    let ancestors = object
        .pointer("/status/ancestors")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let refused: Vec<String> = ancestors
        .iter()
        .filter_map(|ancestor| {
            let conditions = ancestor
                .get("conditions")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            let accepted = condition(conditions, "Accepted");
            (accepted.is_some() && !is_true(accepted)).then(|| reason_message(accepted))
        })
        .collect();
    let hostname = object
        .pointer("/spec/validation/hostname")
        .and_then(Value::as_str)
        .unwrap_or("?");
    if refused.is_empty() {
        (true, format!("present (hostname {hostname})"))
    } else {
        (false, format!("not accepted: {}", refused.join("; ")))
    }
}

/// Envoy Gateway policy (SecurityPolicy, BackendTrafficPolicy, ClientTrafficPolicy): attached
/// to at least one target (an entry in `status.ancestors`) and `Accepted=True` on every one.
/// A policy whose target never appears (e.g. the HTTPRoute the AI Gateway controller should
/// generate) has no ancestors and fails.
pub fn policy_accepted(object: &Value) -> (bool, String) {
    let ancestors = object
        .pointer("/status/ancestors")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if ancestors.is_empty() {
        return (false, "not attached to any target yet".to_owned());
    }
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for ancestor in ancestors {
        let target = ancestor
            .pointer("/ancestorRef/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let conditions = ancestor
            .get("conditions")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let condition = condition(conditions, "Accepted");
        if is_true(condition) {
            accepted.push(target.to_owned());
        } else {
            refused.push(format!("{target}: {}", reason_message(condition)));
        }
    }
    if refused.is_empty() {
        (true, format!("Accepted by {}", accepted.join(", ")))
    } else {
        (false, format!("not accepted: {}", refused.join("; ")))
    }
}

/// Judge every expected object (missing ones fail) and every live object of the same kinds
/// that was not expected (extra ones are judged too, so `status` on a cluster without a
/// rendered tree still reports everything).
pub fn judge(
    check: &'static str,
    expected: &[Expected],
    live: &[Value],
    rule: fn(&Value) -> (bool, String),
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for want in expected {
        let found = live
            .iter()
            .find(|object| name_of(object) == (want.namespace.as_str(), want.name.as_str()));
        let (ok, detail) = match found {
            Some(object) => rule(object),
            None => (false, "rendered but not found in the cluster".to_owned()),
        };
        outcomes.push(Outcome {
            check,
            subject: want.subject(),
            ok,
            detail,
        });
    }
    for object in live {
        let (ns, name) = name_of(object);
        if expected
            .iter()
            .any(|want| (want.namespace.as_str(), want.name.as_str()) == (ns, name))
        {
            continue;
        }
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("object");
        let (ok, detail) = rule(object);
        outcomes.push(Outcome {
            check,
            subject: format!("{kind} {ns}/{name}"),
            ok,
            detail,
        });
    }
    if outcomes.is_empty() {
        outcomes.push(Outcome {
            check,
            subject: "-".to_owned(),
            ok: false,
            detail: "nothing found".to_owned(),
        });
    }
    outcomes
}

/// Render outcomes grouped by check, for people.
pub fn report(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let mut last: Option<&str> = None;
    for outcome in outcomes {
        if last != Some(outcome.check) {
            out.push_str(&format!("{}\n", outcome.check));
            last = Some(outcome.check);
        }
        out.push_str(&format!("  {outcome}\n"));
    }
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    out.push_str(&format!(
        "{} passed, {failed} failed\n",
        outcomes.len() - failed
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ks(ready: &str, generation: i64, observed: i64) -> Value {
        json!({
            "kind": "Kustomization",
            "metadata": {"name": "ai-gateway-routes", "namespace": "envoy-ai-gateway-system", "generation": generation},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "ReconciliationSucceeded",
                "message": "Applied revision: latest@sha256:abc", "observedGeneration": observed}]}
        })
    }

    #[test]
    fn kustomization() {
        assert!(kustomization_ready(&ks("True", 2, 2)).0);
        let (ok, detail) = kustomization_ready(&ks("True", 3, 2));
        assert!(!ok && detail.contains("current generation"), "{detail}");
        let failed = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "BuildFailed",
            "message": "kustomize build failed: accumulating resources"}]}});
        assert_eq!(
            kustomization_ready(&failed),
            (
                false,
                "not Ready (BuildFailed: kustomize build failed: accumulating resources)"
                    .to_owned()
            )
        );
        assert_eq!(
            kustomization_ready(&json!({})).1,
            "not Ready (no such condition yet)"
        );
        let mut suspended = ks("True", 1, 1);
        suspended["spec"] = json!({"suspend": true});
        assert!(!kustomization_ready(&suspended).0);
    }

    #[test]
    fn ai_resources() {
        let accepted = json!({"status": {"conditions": [{"type": "Accepted", "status": "True"}]}});
        assert!(ai_accepted(&accepted).0);
        // The v0.4.0 controller reports refusal as a NotAccepted condition.
        let refused = json!({"status": {"conditions": [{"type": "NotAccepted", "status": "True", "reason": "NotAccepted",
            "message": "BackendSecurityPolicy azure not found"}]}});
        assert_eq!(
            ai_accepted(&refused),
            (
                false,
                "NotAccepted (NotAccepted: BackendSecurityPolicy azure not found)".to_owned()
            )
        );
        assert!(!ai_accepted(&json!({"status": {}})).0);
    }

    #[test]
    fn policies() {
        let accepted = json!({"status": {"ancestors": [
            {"ancestorRef": {"kind": "HTTPRoute", "name": "azure-openai"}, "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
             "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}]}]}});
        assert_eq!(
            policy_accepted(&accepted),
            (true, "Accepted by azure-openai".to_owned())
        );
        assert_eq!(
            policy_accepted(&json!({"status": {}})),
            (false, "not attached to any target yet".to_owned())
        );
        let conflicted = json!({"status": {"ancestors": [
            {"ancestorRef": {"name": "ai-gateway"}, "conditions": [{"type": "Accepted", "status": "True"}]},
            {"ancestorRef": {"name": "azure-openai"}, "conditions": [{"type": "Accepted", "status": "False",
             "reason": "Invalid", "message": "secret ai-gateway-client-keys not found"}]}]}});
        assert_eq!(
            policy_accepted(&conflicted).1,
            "not accepted: azure-openai: Invalid: secret ai-gateway-client-keys not found"
        );
        assert!(!policy_accepted(&conflicted).0);
    }

    #[test]
    fn gateway() {
        let programmed = json!({"status": {"addresses": [{"value": "172.18.255.200"}],
            "conditions": [{"type": "Accepted", "status": "True"}, {"type": "Programmed", "status": "True"}]}});
        assert_eq!(
            gateway_programmed(&programmed),
            (true, "Programmed at 172.18.255.200".to_owned())
        );
        let pending = json!({"status": {"conditions": [{"type": "Programmed", "status": "False", "reason": "AddressNotAssigned"}]}});
        assert_eq!(
            gateway_programmed(&pending).1,
            "not Programmed (AddressNotAssigned)"
        );
    }

    #[test]
    fn pods() {
        let running = json!({"status": {"phase": "Running", "containerStatuses": [
            {"name": "envoy", "ready": true, "restartCount": 0},
            {"name": "ai-gateway-extproc", "ready": true, "restartCount": 1}]}});
        assert_eq!(
            pod_running(&running),
            (
                true,
                "Running, 2 container(s) ready, 1 restart(s)".to_owned()
            )
        );
        let crashing = json!({"status": {"phase": "Running", "containerStatuses": [
            {"name": "envoy-ratelimit", "ready": false, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(
            pod_running(&crashing),
            (
                false,
                "phase Running; envoy-ratelimit: CrashLoopBackOff".to_owned()
            )
        );
        assert_eq!(
            pod_running(&json!({"status": {"phase": "Pending"}})),
            (false, "phase Pending".to_owned())
        );
        assert!(pod_running(&json!({"status": {"phase": "Succeeded"}})).0);
    }

    #[test]
    fn tls_policies() {
        let present = json!({"spec": {"validation": {"hostname": "e2e-primary.openai.azure.com"}}});
        assert_eq!(
            backend_tls_policy(&present),
            (
                true,
                "present (hostname e2e-primary.openai.azure.com)".to_owned()
            )
        );
        let refused = json!({"spec": {}, "status": {"ancestors": [{"conditions": [
            {"type": "Accepted", "status": "False", "reason": "NoValidCACertificate", "message": "ConfigMap e2e-test-ca not found"}]}]}});
        assert!(!backend_tls_policy(&refused).0);
    }

    #[test]
    fn judge_reports_missing_and_extra() {
        let expected = vec![
            Expected::new(
                "Kustomization",
                "envoy-ai-gateway-system",
                "ai-gateway-routes",
            ),
            Expected::new("Kustomization", "envoy-ai-gateway-system", "ai-gateway-mcp"),
        ];
        let mut extra = ks("False", 1, 1);
        extra["metadata"]["name"] = json!("hand-made");
        let live = vec![ks("True", 1, 1), extra];
        let outcomes = judge("Kustomization Ready", &expected, &live, kustomization_ready);
        let summary: Vec<(String, bool)> =
            outcomes.iter().map(|o| (o.subject.clone(), o.ok)).collect();
        assert_eq!(
            summary,
            vec![
                (
                    "Kustomization envoy-ai-gateway-system/ai-gateway-routes".to_owned(),
                    true
                ),
                (
                    "Kustomization envoy-ai-gateway-system/ai-gateway-mcp".to_owned(),
                    false
                ),
                (
                    "Kustomization envoy-ai-gateway-system/hand-made".to_owned(),
                    false
                ),
            ]
        );
        assert_eq!(outcomes[1].detail, "rendered but not found in the cluster");
        let text = report(&outcomes);
        assert!(text.starts_with("Kustomization Ready\n  [ok  ] Kustomization envoy-ai-gateway-system/ai-gateway-routes: Ready"), "{text}");
        assert!(text.ends_with("1 passed, 2 failed\n"), "{text}");
        assert!(
            !judge("Gateway Programmed", &[], &[], gateway_programmed)[0].ok,
            "an empty result is a failure"
        );
    }
}
