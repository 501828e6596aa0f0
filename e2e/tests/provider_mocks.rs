//! Issue 16: the OpenAI, Anthropic and Bedrock mocks over real HTTP on loopback, and the verdict
//! the harness draws from what they recorded (`e2e::providers::routed_to_provider`).
//!
//! Each mock is shown to accept the request the AI Gateway v0.4.0 translators send (path, model,
//! credential) and to refuse the mistakes the gateway could make: a missing or wrong credential,
//! the client's `Authorization` passed through, a model id without its override, a signature
//! scoped to another region or service.

use std::net::SocketAddr;

use e2e::http::{self, Endpoint, Response};
use e2e::mock::{self, Listen, MockConfig, ProviderConfig, TlsFiles, Usage, Wire};
use e2e::providers::{ProviderRoute, routed_to_provider, upstream_path};
use e2e::tls::{self, TestCa};
use serde_json::{Value, json};

const BEDROCK_MODEL: &str = "us.meta.llama3-2-1b-instruct-v1:0";
const KEY_ID: &str = "AKIAE2EFAKEKEY000001";

fn config(id: &str, wire: Wire, credential: Option<&str>, models: &[&str]) -> ProviderConfig {
    ProviderConfig {
        listen: Listen {
            id: id.into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin: Some("127.0.0.1:0".parse().unwrap()),
            tls: None,
        },
        wire,
        credential: credential.map(str::to_owned),
        region: (wire == Wire::Bedrock).then(|| "us-east-1".to_owned()),
        prefix: None,
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        usage: Usage {
            prompt_tokens: 3,
            completion_tokens: 4,
        },
    }
}

async fn start(config: ProviderConfig) -> mock::RunningMock {
    mock::start(MockConfig::Provider(config)).await.unwrap()
}

fn http_to(addr: SocketAddr) -> Endpoint {
    Endpoint::parse(&format!("http://{addr}"), None).unwrap()
}

async fn post(endpoint: &Endpoint, path: &str, headers: &[(&str, &str)], body: &Value) -> Response {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    http::send(endpoint, "POST", path, &all, body.to_string().into_bytes())
        .await
        .unwrap()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn sigv4(key_id: &str, region: &str, service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={key_id}/20260101/{region}/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
        "0".repeat(64)
    )
}

#[tokio::test]
async fn openai_mock_takes_the_bearer_key_and_the_model_id() {
    let running = start(config(
        "openai",
        Wire::OpenAi,
        Some("sk-e2e"),
        &["gpt-4o-mini"],
    ))
    .await;
    let ep = http_to(running.addr());
    let path = "/v1/chat/completions";
    let ok = post(
        &ep,
        path,
        &[("authorization", "Bearer sk-e2e")],
        &chat("gpt-4o-mini"),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.json_body()["usage"]["total_tokens"], 7);
    assert_eq!(ok.header("x-mock-upstream"), Some("openai"));
    for (headers, body, status) in [
        (vec![], chat("gpt-4o-mini"), 401),
        (
            vec![("authorization", "Bearer client-key")],
            chat("gpt-4o-mini"),
            401,
        ),
        // The name clients send, not the provider's id: the override is missing.
        (vec![("authorization", "Bearer sk-e2e")], chat("fast"), 404),
        (
            vec![("authorization", "Bearer sk-e2e")],
            json!({"model": "gpt-4o-mini"}),
            400,
        ),
    ] {
        let r = post(&ep, path, &headers, &body).await;
        assert_eq!(r.status, status, "{headers:?} {body}");
    }
    // Another prefix than the configured one is not the OpenAI API.
    let r = post(
        &ep,
        "/openai/v1/chat/completions",
        &[("authorization", "Bearer sk-e2e")],
        &chat("gpt-4o-mini"),
    )
    .await;
    assert_eq!(r.status, 404);

    let recorded = running.recorded();
    let route = ProviderRoute {
        model: "fast",
        upstream_model: "gpt-4o-mini",
        upstream: "openai",
        wire: Wire::OpenAi,
        prefix: "v1",
        credential: Some("sk-e2e"),
        region: None,
    };
    // Only the first request succeeded: the verdict finds it.
    assert!(routed_to_provider(&route, 200, Some("openai"), &recorded[..1]).is_ok());
    // A request without the override (model `fast`) is not a success of this route.
    let wrong_model = ProviderRoute {
        upstream_model: "fast",
        ..route
    };
    assert!(routed_to_provider(&wrong_model, 200, Some("openai"), &recorded[..1]).is_err());
    assert!(routed_to_provider(&route, 200, Some("other"), &recorded).is_err());
    assert!(routed_to_provider(&route, 500, Some("openai"), &recorded).is_err());
    running.shutdown().await;
}

#[tokio::test]
async fn keyless_openai_compatible_server_refuses_a_forwarded_authorization() {
    let running = start(config("local", Wire::OpenAi, None, &["llama3.2"])).await;
    let ep = http_to(running.addr());
    let path = "/v1/chat/completions";
    assert_eq!(post(&ep, path, &[], &chat("llama3.2")).await.status, 200);
    let leaked = post(
        &ep,
        path,
        &[("authorization", "Bearer client-key")],
        &chat("llama3.2"),
    )
    .await;
    assert_eq!(leaked.status, 401);
    let recorded = running.recorded();
    let route = ProviderRoute {
        model: "llama3.2",
        upstream_model: "llama3.2",
        upstream: "local",
        wire: Wire::OpenAi,
        prefix: "v1",
        credential: None,
        region: None,
    };
    assert!(routed_to_provider(&route, 200, Some("local"), &recorded).is_ok());
    running.shutdown().await;
}

#[tokio::test]
async fn anthropic_mock_takes_x_api_key_and_refuses_authorization() {
    let running = start(config(
        "anthropic",
        Wire::Anthropic,
        Some("sk-ant-e2e"),
        &["claude-e2e"],
    ))
    .await;
    let ep = http_to(running.addr());
    let body = json!({"model": "claude-e2e", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
    let ok = post(&ep, "/v1/messages", &[("x-api-key", "sk-ant-e2e")], &body).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.json_body()["usage"]["input_tokens"], 3);
    assert_eq!(ok.json_body()["usage"]["output_tokens"], 4);
    for (path, headers, status) in [
        ("/v1/messages", vec![], 401),
        ("/v1/messages", vec![("x-api-key", "wrong")], 401),
        // An APIKey policy sends a Bearer token instead: refused.
        (
            "/v1/messages",
            vec![("authorization", "Bearer sk-ant-e2e")],
            401,
        ),
        (
            "/v1/messages",
            vec![
                ("x-api-key", "sk-ant-e2e"),
                ("authorization", "Bearer client"),
            ],
            401,
        ),
        // OpenAI chat completions are not Anthropic's API.
        (
            "/v1/chat/completions",
            vec![("x-api-key", "sk-ant-e2e")],
            404,
        ),
    ] {
        assert_eq!(
            post(&ep, path, &headers, &body).await.status,
            status,
            "{path} {headers:?}"
        );
    }
    let recorded = running.recorded();
    let route = ProviderRoute {
        model: "claude-e2e",
        upstream_model: "claude-e2e",
        upstream: "anthropic",
        wire: Wire::Anthropic,
        prefix: "",
        credential: Some("sk-ant-e2e"),
        region: None,
    };
    assert!(routed_to_provider(&route, 200, Some("anthropic"), &recorded).is_ok());
    let other_key = ProviderRoute {
        credential: Some("sk-ant-other"),
        ..route
    };
    assert!(routed_to_provider(&other_key, 200, Some("anthropic"), &recorded).is_err());
    running.shutdown().await;
}

#[tokio::test]
async fn bedrock_mock_wants_a_sigv4_signature_for_its_key_region_and_service() {
    let running = start(config(
        "bedrock",
        Wire::Bedrock,
        Some(KEY_ID),
        &[BEDROCK_MODEL],
    ))
    .await;
    let ep = http_to(running.addr());
    let route = ProviderRoute {
        model: "e2e-bedrock-llama",
        upstream_model: BEDROCK_MODEL,
        upstream: "bedrock",
        wire: Wire::Bedrock,
        prefix: "",
        credential: Some(KEY_ID),
        region: Some("us-east-1"),
    };
    let path = upstream_path(&route);
    assert_eq!(path, "/model/us.meta.llama3-2-1b-instruct-v1:0/converse");
    let body = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let good = sigv4(KEY_ID, "us-east-1", "bedrock");
    let ok = post(
        &ep,
        &path,
        &[("authorization", &good), ("x-amz-date", "20260101T000000Z")],
        &body,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.json_body()["usage"]["totalTokens"], 7);
    let west = sigv4(KEY_ID, "us-west-2", "bedrock");
    let s3 = sigv4(KEY_ID, "us-east-1", "s3");
    let other_key = sigv4("AKIAOTHERFAKEKEY0001", "us-east-1", "bedrock");
    for (p, headers, status) in [
        (path.as_str(), vec![], 403),
        (
            path.as_str(),
            vec![
                ("authorization", "Bearer x"),
                ("x-amz-date", "20260101T000000Z"),
            ],
            403,
        ),
        (
            path.as_str(),
            vec![
                ("authorization", west.as_str()),
                ("x-amz-date", "20260101T000000Z"),
            ],
            403,
        ),
        (
            path.as_str(),
            vec![
                ("authorization", s3.as_str()),
                ("x-amz-date", "20260101T000000Z"),
            ],
            403,
        ),
        (
            path.as_str(),
            vec![
                ("authorization", other_key.as_str()),
                ("x-amz-date", "20260101T000000Z"),
            ],
            403,
        ),
        (path.as_str(), vec![("authorization", good.as_str())], 403),
        // The name clients send instead of the Bedrock model id.
        (
            "/model/e2e-bedrock-llama/converse",
            vec![
                ("authorization", good.as_str()),
                ("x-amz-date", "20260101T000000Z"),
            ],
            404,
        ),
    ] {
        assert_eq!(
            post(&ep, p, &headers, &body).await.status,
            status,
            "{p} {headers:?}"
        );
    }
    // An inference-profile ARN: `/` is escaped in the path, and the mock decodes it.
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3";
    let arn_route = ProviderRoute {
        upstream_model: arn,
        ..route
    };
    let arn_path = upstream_path(&arn_route);
    assert_eq!(
        arn_path,
        "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.meta.llama3/converse"
    );
    let headers = [
        ("authorization", good.as_str()),
        ("x-amz-date", "20260101T000000Z"),
    ];
    // Not one of the models this mock serves: 404 after the signature check passed.
    assert_eq!(post(&ep, &arn_path, &headers, &body).await.status, 404);
    let recorded = running.recorded();
    assert_eq!(
        recorded.last().unwrap().path,
        arn_path,
        "the mock records the raw path"
    );
    assert!(routed_to_provider(&route, 200, Some("bedrock"), &recorded).is_ok());
    let west_route = ProviderRoute {
        region: Some("us-west-2"),
        ..route
    };
    assert!(routed_to_provider(&west_route, 200, Some("bedrock"), &recorded).is_err());
    running.shutdown().await;
}

#[tokio::test]
async fn provider_mocks_serve_tls_for_their_public_host() {
    let ca = TestCa::generate().unwrap();
    let cert = ca.issue(&["api.openai.com".to_owned()]).unwrap();
    let mut c = config("openai-tls", Wire::OpenAi, Some("sk-e2e"), &[]);
    c.listen.tls = Some(TlsFiles::from(&cert));
    let running = start(c).await;
    let ep = Endpoint::parse(
        &format!("https://api.openai.com:{}", running.addr().port()),
        Some(tls::client_config(ca.cert_pem()).unwrap()),
    )
    .unwrap()
    .via(running.addr());
    let r = post(
        &ep,
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-e2e")],
        &chat("anything"),
    )
    .await;
    assert_eq!(r.status, 200);
    running.shutdown().await;
}

#[test]
fn a_provider_mock_without_its_credential_does_not_start() {
    assert!(mock::ProviderMock::new(config("a", Wire::Anthropic, None, &[])).is_err());
    let mut bedrock = config("b", Wire::Bedrock, Some(KEY_ID), &[]);
    bedrock.region = None;
    assert!(mock::ProviderMock::new(bedrock).is_err());
    assert!(mock::ProviderMock::new(config("o", Wire::OpenAi, None, &[])).is_ok());
}
