//! `ai-gateway status` (the `e2e status` binary) when the cluster does not answer, and its
//! Envoy Gateway extension check through the real kube client against a fake API server on
//! loopback (no cluster exists on the machines these tests run on).

use std::process::Command;
use std::sync::Arc;

use e2e::http::{self, Handler, Request, Response};
use serde_json::{Value, json};

#[test]
fn an_unreachable_cluster_is_said_once_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: lab\ncontexts:\n  - name: lab\n    context: {{cluster: lab, user: me}}\nclusters:\n  - name: lab\n    cluster: {{server: 'http://127.0.0.1:{port}'}}\nusers:\n  - name: me\n    user: {{token: fake}}\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_e2e"))
        .args(["status", "--rendered"])
        .arg(dir.path().join("no-tree"))
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("http_proxy")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.matches("cannot reach the cluster").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("help: is the cluster running"), "{stderr}");
    assert!(!stderr.contains("does not serve"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Core v1 with ConfigMaps, Services and Pods: Envoy Gateway's ConfigMap without the AI
/// Gateway's extension settings, the controller's Service, an envoy-gateway pod started
/// without them, and one Envoy proxy pod (not judged).
struct FakeApi;

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": {"resourceVersion": "1"}, "items": items})
}

impl Handler for FakeApi {
    fn handle(&self, request: Request) -> Response {
        let resource = |name: &str, kind: &str| json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": true, "kind": kind, "verbs": ["get", "list"]});
        let body = match request.path.as_str() {
            "/api/v1" => json!({
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
                "resources": [resource("configmaps", "ConfigMap"), resource("services", "Service"), resource("pods", "Pod")]
            }),
            "/api/v1/namespaces/network/configmaps" => list(
                "ConfigMap",
                vec![
                    json!({"metadata": {"name": "envoy-gateway-config", "namespace": "network"},
                    "data": {"envoy-gateway.yaml": "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: EnvoyGateway\nprovider:\n  type: Kubernetes\nextensionApis:\n  enableBackend: true\n"}}),
                ],
            ),
            "/api/v1/namespaces/envoy-ai-gateway-system/services" => list(
                "Service",
                vec![
                    json!({"metadata": {"name": "ai-gateway-controller", "namespace": "envoy-ai-gateway-system"},
                    "spec": {"ports": [{"name": "grpc", "port": 1063}]}}),
                ],
            ),
            "/api/v1/namespaces/network/pods" => list(
                "Pod",
                vec![
                    json!({"metadata": {"name": "envoy-gateway-7d9", "namespace": "network", "labels": {"control-plane": "envoy-gateway"}}}),
                    json!({"metadata": {"name": "envoy-network-envoy-external-1", "namespace": "network", "labels": {"app.kubernetes.io/component": "proxy"}}}),
                ],
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
async fn the_extension_check_explains_accepted_but_401() {
    let server = http::serve("127.0.0.1:0".parse().unwrap(), None, Arc::new(FakeApi))
        .await
        .unwrap();
    let config = kube::Config::new(format!("http://{}", server.addr()).parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let outcomes = e2e::live::extension_checks(&client, "network", "envoy-ai-gateway-system").await;
    let summary: Vec<(&str, bool)> = outcomes
        .iter()
        .map(|o| (o.subject.as_str(), o.ok))
        .collect();
    assert_eq!(
        summary,
        [
            ("ConfigMap network/envoy-gateway-config", false),
            (
                "Service envoy-ai-gateway-system/ai-gateway-controller",
                true
            ),
            ("Pod network/envoy-gateway-7d9", false),
        ]
    );
    assert!(
        outcomes[0].detail.starts_with("no extensionManager"),
        "{}",
        outcomes[0].detail
    );
    assert!(outcomes[0].detail.contains("401"), "{}", outcomes[0].detail);
    assert!(
        outcomes[2]
            .detail
            .contains("rollout restart deployment/envoy-gateway"),
        "{}",
        outcomes[2].detail
    );
}
