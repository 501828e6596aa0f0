//! The `e2e-mock` binary as the containers run it: a config file in, a ready line out, then
//! serving until killed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use e2e::http::{self, Endpoint};
use e2e::mock::{AzureConfig, Listen, MockConfig, TlsFiles, Usage};
use e2e::tls::{self, TestCa};

#[tokio::test]
async fn binary_serves_the_configured_mock() {
    let ca = TestCa::generate().unwrap();
    let cert = ca
        .issue(&["e2e-primary.openai.azure.com".to_owned()])
        .unwrap();
    let config = MockConfig::Azure(AzureConfig {
        listen: Listen {
            id: "azure-e2e-primary".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin: None,
            tls: Some(TlsFiles::from(&cert)),
        },
        api_key: "k".into(),
        deployments: vec![],
        usage: Usage {
            prompt_tokens: 1,
            completion_tokens: 2,
        },
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_e2e-mock"))
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "e2e-mock ready on 127.0.0.1:PORT (admin None)"
    let addr = line
        .strip_prefix("e2e-mock ready on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap();

    let endpoint = Endpoint::parse(
        &format!("https://e2e-primary.openai.azure.com:{}", addr.port()),
        Some(tls::client_config(ca.cert_pem()).unwrap()),
    )
    .unwrap()
    .via(addr);
    let response = http::send(
        &endpoint,
        "POST",
        "/openai/deployments/gpt-4/chat/completions?api-version=2025-01-01-preview",
        &[("api-key", "k"), ("content-type", "application/json")],
        br#"{"messages":[]}"#.to_vec(),
    )
    .await
    .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(response.status, 200);
    assert_eq!(response.json_body()["usage"]["total_tokens"], 3);
}

#[test]
fn binary_refuses_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, r#"{"kind": "azure", "id": "x"}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_e2e-mock"))
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad mock configuration"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
