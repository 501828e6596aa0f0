//! The mock upstreams and the harness clients, over real HTTP (and TLS) on loopback.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use e2e::client::mcp::{McpClient, McpError};
use e2e::client::openai::OpenAiClient;
use e2e::http::{self, Endpoint, Handler, HttpError, Request, Response};
use e2e::mock::{
    self, AzureConfig, Listen, McpConfig, MockConfig, OciMock, TlsFiles, ToolSpec, Usage,
};
use e2e::tls::{self, TestCa};
use serde_json::{Value, json};

const AZURE_HOST: &str = "e2e-primary.openai.azure.com";
const API_KEY: &str = "e2e-key-primary";

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn listen(id: &str, tls: Option<TlsFiles>) -> Listen {
    Listen {
        id: id.into(),
        listen: loopback(),
        admin: Some(loopback()),
        tls,
    }
}

async fn azure(ca: &TestCa) -> mock::RunningMock {
    let cert = ca.issue(&[AZURE_HOST.to_owned()]).unwrap();
    mock::start(MockConfig::Azure(AzureConfig {
        listen: listen("azure-primary", Some(TlsFiles::from(&cert))),
        api_key: API_KEY.into(),
        deployments: vec!["gpt-4".into(), "gpt-4o".into()],
        usage: Usage {
            prompt_tokens: 7,
            completion_tokens: 5,
        },
    }))
    .await
    .unwrap()
}

fn https_to(addr: SocketAddr, host: &str, ca_pem: &str) -> Endpoint {
    let url = format!("https://{host}:{}", addr.port());
    Endpoint::parse(&url, Some(tls::client_config(ca_pem).unwrap()))
        .unwrap()
        .via(addr)
}

fn admin_of(running: &mock::RunningMock) -> Endpoint {
    Endpoint::parse(&format!("http://{}", running.admin_addr().unwrap()), None).unwrap()
}

async fn post(endpoint: &Endpoint, path: &str, headers: &[(&str, &str)], body: Value) -> Response {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    http::send(endpoint, "POST", path, &all, body.to_string().into_bytes())
        .await
        .unwrap()
}

const CHAT: &str = "/openai/deployments/gpt-4o/chat/completions?api-version=2025-01-01-preview";

fn chat_body() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn azure_answers_with_chosen_usage_over_tls() {
    let ca = TestCa::generate().unwrap();
    let running = azure(&ca).await;
    let endpoint = https_to(running.addr(), AZURE_HOST, ca.cert_pem());

    let response = post(&endpoint, CHAT, &[("api-key", API_KEY)], chat_body()).await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.header("x-mock-upstream"), Some("azure-primary"));
    let body = response.json_body();
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(body["usage"]["prompt_tokens"], 7);
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["usage"]["total_tokens"], 12);

    let embeddings = "/openai/deployments/gpt-4/embeddings?api-version=2023-05-15";
    let response = post(
        &endpoint,
        embeddings,
        &[("api-key", API_KEY)],
        json!({"input": "x"}),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json_body()["usage"]["prompt_tokens"], 7);

    // The test changes the usage at run time through the admin API.
    let admin = admin_of(&running);
    let put = http::send(
        &admin,
        "PUT",
        "/_mock/usage",
        &[],
        json!({"prompt_tokens": 100, "completion_tokens": 1})
            .to_string()
            .into_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(put.status, 204);
    let response = post(&endpoint, CHAT, &[("api-key", API_KEY)], chat_body()).await;
    assert_eq!(response.json_body()["usage"]["total_tokens"], 101);

    running.shutdown().await;
}

#[tokio::test]
async fn azure_refuses_what_azure_would_refuse() {
    let ca = TestCa::generate().unwrap();
    let running = azure(&ca).await;
    let endpoint = https_to(running.addr(), AZURE_HOST, ca.cert_pem());

    // (name, headers, body, expected status, expected Azure error code)
    type Case = (
        &'static str,
        Vec<(&'static str, &'static str)>,
        Value,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("no key", vec![], chat_body(), 401, "401"),
        (
            "wrong key",
            vec![("api-key", "other")],
            chat_body(),
            401,
            "401",
        ),
        (
            "client bearer passed through",
            vec![("api-key", API_KEY), ("authorization", "Bearer client-key")],
            chat_body(),
            401,
            "UnexpectedAuthorization",
        ),
        (
            "not chat JSON",
            vec![("api-key", API_KEY)],
            json!({"prompt": "x"}),
            400,
            "BadRequest",
        ),
    ];
    for (name, headers, body, status, code) in cases {
        let response = post(&endpoint, CHAT, &headers, body).await;
        assert_eq!(response.status, status, "{name}");
        assert_eq!(response.json_body()["error"]["code"], code, "{name}");
    }
    let no_version = "/openai/deployments/gpt-4o/chat/completions";
    let response = post(&endpoint, no_version, &[("api-key", API_KEY)], chat_body()).await;
    assert_eq!(response.status, 400);
    let unknown = "/openai/deployments/gpt-35-turbo/chat/completions?api-version=v";
    let response = post(&endpoint, unknown, &[("api-key", API_KEY)], chat_body()).await;
    assert_eq!(
        (
            response.status,
            response.json_body()["error"]["code"].clone()
        ),
        (404, json!("DeploymentNotFound"))
    );
    let openai_path = post(
        &endpoint,
        "/v1/chat/completions",
        &[("api-key", API_KEY)],
        chat_body(),
    )
    .await;
    assert_eq!(openai_path.status, 404);
    let get = http::send(&endpoint, "GET", CHAT, &[("api-key", API_KEY)], Vec::new())
        .await
        .unwrap();
    assert_eq!(get.status, 405);

    // Everything was recorded, with the status the mock gave, and can be read over the admin API.
    let recorded = mock::fetch_recorded(&admin_of(&running)).await.unwrap();
    assert_eq!(recorded, running.recorded());
    let statuses: Vec<u16> = recorded.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![401, 401, 401, 400, 400, 404, 404, 405]);
    assert_eq!(
        recorded[2].header("authorization"),
        Some("Bearer client-key")
    );
    assert_eq!(
        recorded[5].path,
        "/openai/deployments/gpt-35-turbo/chat/completions"
    );
    let clear = http::send(
        &admin_of(&running),
        "DELETE",
        "/_mock/requests",
        &[],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(clear.status, 204);
    assert!(running.recorded().is_empty());
    running.shutdown().await;
}

#[tokio::test]
async fn tls_is_really_checked() {
    let ca = TestCa::generate().unwrap();
    let running = azure(&ca).await;
    // A client trusting another CA must not get through.
    let other = TestCa::generate().unwrap();
    let endpoint = https_to(running.addr(), AZURE_HOST, other.cert_pem());
    let err = http::send(&endpoint, "GET", "/", &[], Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Tls(_)), "{err}");
    // Nor a client that expects another host name (what BackendTLSPolicy `hostname` checks).
    let endpoint = https_to(
        running.addr(),
        "someone-else.openai.azure.com",
        ca.cert_pem(),
    );
    let err = http::send(&endpoint, "GET", "/", &[], Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Tls(_)), "{err}");
    // And plain HTTP to a TLS port gets no HTTP answer.
    let plain = Endpoint::parse(&format!("http://{}", running.addr()), None).unwrap();
    assert!(
        http::send(&plain, "GET", "/", &[], Vec::new())
            .await
            .is_err()
    );
    running.shutdown().await;
}

fn tools() -> Vec<ToolSpec> {
    [
        "list_issues",
        "get_issue",
        "create_pull_request",
        "search_code",
    ]
    .iter()
    .map(|name| ToolSpec {
        name: (*name).into(),
        description: format!("{name} (mock)"),
    })
    .collect()
}

async fn mcp_mock(
    sse: bool,
    api_key: Option<&str>,
    header: Option<&str>,
    tls: Option<TlsFiles>,
) -> mock::RunningMock {
    mock::start(MockConfig::Mcp(McpConfig {
        listen: listen("mcp-github", tls),
        path: "/mcp/readonly".into(),
        tools: tools(),
        api_key: api_key.map(str::to_owned),
        api_key_header: header.map(str::to_owned),
        sse,
    }))
    .await
    .unwrap()
}

#[tokio::test]
async fn mcp_client_and_server_speak_streamable_http() {
    for sse in [false, true] {
        let ca = TestCa::generate().unwrap();
        let cert = ca.issue(&["mcp.e2e.test".to_owned()]).unwrap();
        let running = mcp_mock(sse, Some("fake-token"), None, Some(TlsFiles::from(&cert))).await;
        let mut endpoint = https_to(running.addr(), "mcp.e2e.test", ca.cert_pem());
        endpoint.base_path = "/mcp/readonly".into();
        let mut client = McpClient::new(endpoint).with_header("authorization", "Bearer fake-token");

        let init = client.initialize().await.unwrap();
        assert_eq!(init["protocolVersion"], "2025-06-18");
        assert_eq!(init["serverInfo"]["name"], "mcp-github");
        assert!(client.session().is_some());
        let names = client.list_tools().await.unwrap();
        assert_eq!(
            names,
            vec![
                "list_issues",
                "get_issue",
                "create_pull_request",
                "search_code"
            ]
        );
        let text = client
            .call_tool("get_issue", json!({"number": 7}))
            .await
            .unwrap();
        assert_eq!(text, r#"mcp-github ran get_issue with {"number":7}"#);
        let err = client
            .call_tool("delete_repo", json!({}))
            .await
            .unwrap_err();
        assert!(matches!(err, McpError::Rpc { code: -32602, .. }), "{err}");
        client.close().await.unwrap();

        let recorded = running.recorded();
        let methods: Vec<String> = recorded
            .iter()
            .map(|r| {
                let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
                format!(
                    "{} {} {}",
                    r.method,
                    body["method"].as_str().unwrap_or("-"),
                    r.status
                )
            })
            .collect();
        assert_eq!(
            methods,
            vec![
                "POST initialize 200",
                "POST notifications/initialized 202",
                "POST tools/list 200",
                "POST tools/call 200",
                "POST tools/call 200",
                "DELETE - 200"
            ],
            "sse={sse}"
        );
        // After initialize every request carried the session and the negotiated version.
        assert!(
            recorded[1..]
                .iter()
                .all(|r| r.header("mcp-session-id").is_some())
        );
        assert!(
            recorded[2..5]
                .iter()
                .all(|r| r.header("mcp-protocol-version") == Some("2025-06-18"))
        );
        running.shutdown().await;
    }
}

#[tokio::test]
async fn mcp_server_refuses_bad_requests() {
    let running = mcp_mock(false, Some("raw-key"), Some("X-Api-Key"), None).await;
    let endpoint =
        Endpoint::parse(&format!("http://{}/mcp/readonly", running.addr()), None).unwrap();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-03-26"}});
    let both = "application/json, text/event-stream";
    let send = |headers: Vec<(&'static str, String)>, body: Value| {
        let endpoint = endpoint.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            http::send(
                &endpoint,
                "POST",
                "",
                &headers,
                body.to_string().into_bytes(),
            )
            .await
            .unwrap()
        }
    };
    let json_ct = ("content-type", "application/json".to_owned());
    let key = ("x-api-key", "raw-key".to_owned());

    // Wrong key, then the raw key in the custom header works (no `Bearer` prefix there).
    let r = send(
        vec![
            json_ct.clone(),
            ("accept", both.into()),
            ("x-api-key", "Bearer raw-key".into()),
        ],
        init.clone(),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = send(
        vec![
            json_ct.clone(),
            ("accept", "application/json".into()),
            key.clone(),
        ],
        init.clone(),
    )
    .await;
    assert_eq!(r.status, 406, "Accept must list both types");
    let r = send(vec![("accept", both.into()), key.clone()], init.clone()).await;
    assert_eq!(r.status, 415);
    let r = send(
        vec![json_ct.clone(), ("accept", both.into()), key.clone()],
        init.clone(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json_body()["result"]["protocolVersion"],
        "2025-03-26",
        "a supported older version is echoed"
    );
    let session = r.header("mcp-session-id").unwrap().to_owned();

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let r = send(
        vec![json_ct.clone(), ("accept", both.into()), key.clone()],
        list.clone(),
    )
    .await;
    assert_eq!(r.status, 400, "no session");
    let r = send(
        vec![
            json_ct.clone(),
            ("accept", both.into()),
            key.clone(),
            ("mcp-session-id", "forged".into()),
        ],
        list.clone(),
    )
    .await;
    assert_eq!(r.status, 404, "unknown session");
    let r = send(
        vec![
            json_ct.clone(),
            ("accept", both.into()),
            key.clone(),
            ("mcp-session-id", session.clone()),
        ],
        json!({"jsonrpc": "2.0", "id": 3, "method": "resources/list"}),
    )
    .await;
    assert_eq!(r.json_body()["error"]["code"], -32601);
    let get = http::send(
        &endpoint,
        "GET",
        "",
        &[("x-api-key", "raw-key"), ("accept", "text/event-stream")],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(get.status, 405);
    let other_path = Endpoint::parse(&format!("http://{}/mcp", running.addr()), None).unwrap();
    let r = http::send(
        &other_path,
        "POST",
        "",
        &[("x-api-key", "raw-key")],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 404);
    running.shutdown().await;
}

#[tokio::test]
async fn oci_registry_serves_one_flux_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let layer = b"not really gzip, the registry does not care".to_vec();
    let file = dir.path().join("artifact.tar.gz");
    std::fs::write(&file, &layer).unwrap();
    let running = mock::start(MockConfig::Oci(mock::OciConfig {
        listen: listen("oci", None),
        repository: "e2e/rendered".into(),
        tag: "latest".into(),
        artifact_file: file,
        revision: "e2e@sha1:abc".into(),
    }))
    .await
    .unwrap();
    let endpoint = Endpoint::parse(&format!("http://{}", running.addr()), None).unwrap();
    let get = |path: &'static str| {
        let endpoint = endpoint.clone();
        async move {
            http::send(&endpoint, "GET", path, &[], Vec::new())
                .await
                .unwrap()
        }
    };
    assert_eq!(get("/v2/").await.status, 200);
    let manifest = get("/v2/e2e/rendered/manifests/latest").await;
    assert_eq!(manifest.status, 200);
    let digest = manifest.header("docker-content-digest").unwrap().to_owned();
    assert_eq!(
        digest,
        format!("sha256:{}", e2e::digest::sha256_hex(&manifest.body))
    );
    let manifest_json = manifest.json_body();
    assert_eq!(
        manifest_json["layers"][0]["mediaType"],
        mock::FLUX_LAYER_MEDIA_TYPE
    );
    assert_eq!(
        manifest_json["config"]["mediaType"],
        mock::FLUX_CONFIG_MEDIA_TYPE
    );
    assert_eq!(manifest_json["layers"][0]["size"], layer.len());
    let layer_digest = manifest_json["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let blob = http::send(
        &endpoint,
        "GET",
        &format!("/v2/e2e/rendered/blobs/{layer_digest}"),
        &[],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(blob.body, layer);
    let by_digest = http::send(
        &endpoint,
        "HEAD",
        &format!("/v2/e2e/rendered/manifests/{digest}"),
        &[],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(by_digest.status, 200);
    assert!(by_digest.body.is_empty(), "HEAD has no body");
    assert_eq!(get("/v2/e2e/rendered/manifests/other").await.status, 404);
    assert_eq!(get("/v2/e2e/other/manifests/latest").await.status, 404);
    assert_eq!(
        get("/v2/e2e/rendered/tags/list").await.json_body()["tags"],
        json!(["latest"])
    );
    // The same content gives the same digests, so Flux sees no new revision on a re-run.
    let again = OciMock::from_layer(
        "e2e/rendered".into(),
        "latest".into(),
        "e2e@sha1:abc",
        layer,
    );
    assert_eq!(again.manifest_digest(), digest);
    running.shutdown().await;
}

/// Stands in for the gateway's client-facing API, to check what the OpenAI client sends.
struct FakeGateway(Mutex<Vec<Request>>);

impl Handler for FakeGateway {
    fn handle(&self, request: Request) -> Response {
        self.0.lock().unwrap().push(request.clone());
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        match body["model"].as_str() {
            Some("gpt-4o") => Response::json(200, &json!({"usage": {"total_tokens": 42}}))
                .with_header("x-mock-upstream", "azure-primary"),
            _ => Response::json(404, &json!({"error": "No matching route found."})),
        }
    }
}

#[tokio::test]
async fn openai_client_sends_model_and_user() {
    let gateway = Arc::new(FakeGateway(Mutex::new(Vec::new())));
    let server = http::serve(loopback(), None, Arc::clone(&gateway) as Arc<dyn Handler>)
        .await
        .unwrap();
    let endpoint = Endpoint::parse("http://aiops.e2e.test", None)
        .unwrap()
        .via(server.addr());
    let client = OpenAiClient::new(endpoint);
    let ok = client.chat("gpt-4o", Some("alice")).await.unwrap();
    assert_eq!(
        (ok.status, ok.upstream.as_deref(), ok.total_tokens()),
        (200, Some("azure-primary"), Some(42))
    );
    let missing = client.chat("no-such-model", None).await.unwrap();
    assert_eq!((missing.status, missing.upstream), (404, None));
    let _ = client.embeddings("gpt-4o", Some("bob")).await.unwrap();

    let seen = gateway.0.lock().unwrap().clone();
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(seen[0].header("host"), Some("aiops.e2e.test"));
    assert_eq!(seen[0].header("x-user-id"), Some("alice"));
    assert_eq!(seen[1].header("x-user-id"), None);
    assert_eq!(seen[2].path, "/v1/embeddings");
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(body["messages"][0]["role"], "user");
    server.shutdown().await;
}
