//! The live checks (`cargo xtask ai-gateway status`) against a fake Kubernetes API server on
//! loopback: discovery, list calls and verdicts go through the real kube client.

mod common;

use std::sync::Arc;

use e2e::checks::Expected;
use e2e::http::{self, Handler, Request, Response};
use e2e::plan::CheckSpec;
use serde_json::{Value, json};

/// Serves discovery and namespaced lists for a few kinds; anything else is 404.
struct FakeApi;

fn resource_list(group_version: &str, kind: &str, plural: &str) -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [{"name": plural, "singularName": kind.to_lowercase(), "namespaced": true, "kind": kind,
                       "verbs": ["get", "list", "watch"]}]
    })
}

fn list(api_version: &str, kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": format!("{kind}List"), "metadata": {"resourceVersion": "1"}, "items": items})
}

fn object(api_version: &str, kind: &str, name: &str, status: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind,
           "metadata": {"name": name, "namespace": "envoy-ai-gateway-system", "generation": 1}, "status": status})
}

impl Handler for FakeApi {
    fn handle(&self, request: Request) -> Response {
        let ks = "kustomize.toolkit.fluxcd.io/v1";
        let ai = "aigateway.envoyproxy.io/v1alpha1";
        let eg = "gateway.envoyproxy.io/v1alpha1";
        let body = match request.path.as_str() {
            "/apis/kustomize.toolkit.fluxcd.io/v1" => {
                resource_list(ks, "Kustomization", "kustomizations")
            }
            "/apis/aigateway.envoyproxy.io/v1alpha1" => {
                resource_list(ai, "AIGatewayRoute", "aigatewayroutes")
            }
            "/api/v1" => resource_list("v1", "Pod", "pods"),
            "/apis/gateway.envoyproxy.io/v1alpha1" => {
                resource_list(eg, "SecurityPolicy", "securitypolicies")
            }
            // Its target (the HTTPRoute the controller generates) never appeared: no ancestors.
            "/apis/gateway.envoyproxy.io/v1alpha1/namespaces/envoy-ai-gateway-system/securitypolicies" => {
                list(
                    eg,
                    "SecurityPolicy",
                    vec![object(
                        eg,
                        "SecurityPolicy",
                        "azure-openai-client-keys",
                        json!({"ancestors": []}),
                    )],
                )
            }
            "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/envoy-ai-gateway-system/kustomizations" => {
                list(
                    ks,
                    "Kustomization",
                    vec![object(
                        ks,
                        "Kustomization",
                        "routes",
                        json!({"conditions": [
                    {"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "Applied revision: latest@sha256:1", "observedGeneration": 1}]}),
                    )],
                )
            }
            "/apis/aigateway.envoyproxy.io/v1alpha1/namespaces/envoy-ai-gateway-system/aigatewayroutes" => {
                list(
                    ai,
                    "AIGatewayRoute",
                    vec![object(
                        ai,
                        "AIGatewayRoute",
                        "azure-openai",
                        json!({"conditions": [
                    {"type": "NotAccepted", "status": "True", "reason": "NotAccepted", "message": "AIServiceBackend azure-x not found"}]}),
                    )],
                )
            }
            "/api/v1/namespaces/envoy-ai-gateway-system/pods" => list(
                "v1",
                "Pod",
                vec![object(
                    "v1",
                    "Pod",
                    "ai-gateway-controller-abc",
                    json!({"phase": "Running",
                    "containerStatuses": [{"name": "ai-gateway-controller", "ready": true, "restartCount": 0}]}),
                )],
            ),
            _ => {
                return Response::json(
                    404,
                    &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
                );
            }
        };
        Response::json(200, &body)
    }
}

#[tokio::test]
async fn status_checks_through_the_kube_client() {
    let server = http::serve("127.0.0.1:0".parse().unwrap(), None, Arc::new(FakeApi))
        .await
        .unwrap();
    let config = kube::Config::new(format!("http://{}", server.addr()).parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let ns = "envoy-ai-gateway-system".to_owned();
    let specs = vec![
        CheckSpec {
            check: "Kustomizations Ready",
            api_version: "kustomize.toolkit.fluxcd.io/v1",
            kind: "Kustomization",
            namespace: ns.clone(),
            expected: vec![
                Expected::new("Kustomization", &ns, "routes"),
                Expected::new("Kustomization", &ns, "mcp"),
            ],
        },
        CheckSpec {
            check: "AI resources Accepted",
            api_version: "aigateway.envoyproxy.io/v1alpha1",
            kind: "AIGatewayRoute",
            namespace: ns.clone(),
            expected: vec![Expected::new("AIGatewayRoute", &ns, "azure-openai")],
        },
        CheckSpec {
            check: "Pods Running",
            api_version: "v1",
            kind: "Pod",
            namespace: ns.clone(),
            expected: vec![],
        },
        CheckSpec {
            check: "Policies Accepted",
            api_version: "gateway.envoyproxy.io/v1alpha1",
            kind: "SecurityPolicy",
            namespace: ns.clone(),
            expected: vec![Expected::new(
                "SecurityPolicy",
                &ns,
                "azure-openai-client-keys",
            )],
        },
        CheckSpec {
            check: "Gateway Programmed",
            api_version: "gateway.networking.k8s.io/v1",
            kind: "Gateway",
            namespace: ns.clone(),
            expected: vec![Expected::new("Gateway", &ns, "ai-gateway")],
        },
    ];
    let outcomes = e2e::live::run_checks(&client, &specs).await;
    let summary: Vec<(&str, bool)> = outcomes
        .iter()
        .map(|o| (o.subject.as_str(), o.ok))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("Kustomization envoy-ai-gateway-system/routes", true),
            ("Kustomization envoy-ai-gateway-system/mcp", false),
            ("AIGatewayRoute envoy-ai-gateway-system/azure-openai", false),
            (
                "Pod envoy-ai-gateway-system/ai-gateway-controller-abc",
                true
            ),
            (
                "SecurityPolicy envoy-ai-gateway-system/azure-openai-client-keys",
                false
            ),
            ("Gateway in envoy-ai-gateway-system", false),
        ]
    );
    assert_eq!(outcomes[4].detail, "not attached to any target yet");
    assert!(
        outcomes[2]
            .detail
            .contains("AIServiceBackend azure-x not found"),
        "{}",
        outcomes[2].detail
    );
    assert!(
        outcomes[5].detail.contains("does not serve Gateway"),
        "{}",
        outcomes[5].detail
    );

    // Waiting for a Ready Kustomization returns at once; a missing one times out with the reason.
    let ready =
        e2e::live::wait_kustomization(&client, &ns, "routes", std::time::Duration::from_secs(5))
            .await;
    assert!(ready.unwrap().starts_with("Ready"));
    let missing =
        e2e::live::wait_kustomization(&client, &ns, "nope", std::time::Duration::from_millis(10))
            .await;
    assert!(missing.unwrap_err().contains("not found yet"));
    server.shutdown().await;
}

#[test]
fn status_specs_follow_the_rendered_tree() {
    let rendered = common::render_e2e();
    let specs = e2e::live::status_specs(rendered.path()).unwrap();
    let names = |kind: &str| -> Vec<String> {
        specs
            .iter()
            .filter(|s| s.kind == kind)
            .flat_map(|s| {
                s.expected
                    .iter()
                    .map(|e| format!("{}/{}", e.namespace, e.name))
            })
            .collect()
    };
    // The AI Gateway namespace's own Kustomizations (docs/ai-gateway.md); network/envoy-gateway
    // is not the AI Gateway's to report on.
    let ns = "envoy-ai-gateway-system";
    let mut kustomizations = names("Kustomization");
    kustomizations.sort();
    assert_eq!(
        kustomizations,
        [
            "anthropic",
            "azure-openai",
            "bedrock",
            "controller",
            "crds",
            "gateway",
            "mcp",
            "openai",
            "redis",
            "routes"
        ]
        .map(|n| format!("{ns}/{n}"))
    );
    assert_eq!(names("Gateway"), [format!("{ns}/ai-gateway")]);
    assert_eq!(names("MCPRoute"), [format!("{ns}/mcp")]);
    assert_eq!(
        names("SecurityPolicy"),
        [format!("{ns}/azure-openai-client-keys")]
    );
    // No rendered tree: judge whatever is in the default namespace.
    let empty = tempfile::tempdir().unwrap();
    let specs = e2e::live::status_specs(empty.path()).unwrap();
    assert!(
        specs
            .iter()
            .all(|s| s.expected.is_empty() && s.namespace == e2e::live::DEFAULT_NAMESPACE)
    );
    assert_eq!(specs.len(), 7);
}
