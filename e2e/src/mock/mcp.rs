//! An MCP server over streamable HTTP (JSON-RPC 2.0 on one endpoint).
//!
//! - `POST <path>` with `Accept: application/json, text/event-stream` (406 otherwise) and a JSON
//!   body (415 otherwise). `initialize` creates a session and returns it in `Mcp-Session-Id`;
//!   every later message must carry that header (400 without, 404 for an unknown session).
//! - Notifications (`notifications/initialized`, …) get `202 Accepted` and no body.
//! - `tools/list` lists the configured tools; `tools/call` answers with a text content naming
//!   this server, the tool and the arguments; `ping` answers `{}`.
//! - `GET <path>` is 405 (no server-initiated stream); `DELETE <path>` ends the session.
//! - Optional API-key check, with the AI Gateway's semantics: header `Authorization` carries
//!   `Bearer <key>`, any other header carries the raw key. A wrong or missing key is 401.
//! - Answers are JSON, or a one-event SSE stream when `sse` is set.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Admin, Listen, MockError, Recorder};
use crate::http::{Handler, Request, Response};

/// Protocol revisions this mock speaks, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-06-18", "2025-03-26"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct McpConfig {
    #[serde(flatten)]
    pub listen: Listen,
    /// The MCP endpoint path, e.g. `/mcp` or `/mcp/readonly`.
    pub path: String,
    pub tools: Vec<ToolSpec>,
    /// When set, every request must carry this key.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Header for `api_key`; default `Authorization` (value `Bearer <key>`).
    #[serde(default)]
    pub api_key_header: Option<String>,
    /// Answer requests as a one-event `text/event-stream` instead of JSON.
    #[serde(default)]
    pub sse: bool,
}

pub struct McpMock {
    config: McpConfig,
    sessions: Mutex<HashSet<String>>,
    counter: AtomicU64,
    recorder: Recorder,
}

impl McpMock {
    pub fn new(config: McpConfig) -> Result<Self, MockError> {
        if !config.path.starts_with('/') {
            return Err(MockError::Config(format!(
                "mcp: path `{}` must start with `/`",
                config.path
            )));
        }
        Ok(Self {
            config,
            sessions: Mutex::new(HashSet::new()),
            counter: AtomicU64::new(0),
            recorder: Recorder::default(),
        })
    }

    fn id(&self) -> &str {
        &self.config.listen.id
    }

    fn key_ok(&self, request: &Request) -> bool {
        let Some(key) = &self.config.api_key else {
            return true;
        };
        let header = self
            .config
            .api_key_header
            .as_deref()
            .unwrap_or("Authorization");
        let expected = if header.eq_ignore_ascii_case("authorization") {
            format!("Bearer {key}")
        } else {
            key.clone()
        };
        request.header(header) == Some(expected.as_str())
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn answer(&self, request: &Request) -> Response {
        if request.path != self.config.path {
            return Response::new(404);
        }
        if !self.key_ok(request) {
            return Response::json(401, &json!({"error": "missing or wrong API key"}));
        }
        match request.method.as_str() {
            "POST" => self.post(request),
            "DELETE" => match request.header("mcp-session-id") {
                Some(session) if self.sessions().remove(session) => Response::new(200),
                Some(_) => Response::new(404),
                None => Response::new(400),
            },
            _ => Response::new(405).with_header("allow", "POST, DELETE"),
        }
    }

    fn post(&self, request: &Request) -> Response {
        let accept = request.header("accept").unwrap_or("");
        if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
            return Response::json(
                406,
                &rpc_error(
                    Value::Null,
                    -32600,
                    "Accept must list application/json and text/event-stream",
                ),
            );
        }
        if !request
            .header("content-type")
            .unwrap_or("")
            .starts_with("application/json")
        {
            return Response::json(
                415,
                &rpc_error(Value::Null, -32600, "Content-Type must be application/json"),
            );
        }
        let Ok(message) = serde_json::from_slice::<Value>(&request.body) else {
            return Response::json(400, &rpc_error(Value::Null, -32700, "parse error"));
        };
        let Some(method) = message.get("method").and_then(Value::as_str) else {
            // A response from the client (to a server request) or garbage; this server never
            // sends requests, so neither is expected.
            return Response::json(
                400,
                &rpc_error(Value::Null, -32600, "expected a request or notification"),
            );
        };
        let id = message.get("id").cloned();
        if method == "initialize" {
            let Some(id) = id else {
                return Response::json(
                    400,
                    &rpc_error(Value::Null, -32600, "initialize needs an id"),
                );
            };
            let requested = message
                .pointer("/params/protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let version = PROTOCOL_VERSIONS
                .iter()
                .find(|v| **v == requested)
                .unwrap_or(&PROTOCOL_VERSIONS[0]);
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let session = format!("{}-session-{n}", self.id());
            self.sessions().insert(session.clone());
            let result = json!({
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": {"name": self.id(), "version": env!("CARGO_PKG_VERSION")}
            });
            return self
                .reply(rpc_result(id, result))
                .with_header("mcp-session-id", &session);
        }
        match request.header("mcp-session-id") {
            None => {
                return Response::json(
                    400,
                    &rpc_error(Value::Null, -32600, "missing Mcp-Session-Id"),
                );
            }
            Some(session) if !self.sessions().contains(session) => {
                return Response::json(404, &rpc_error(Value::Null, -32600, "unknown session"));
            }
            Some(_) => {}
        }
        if let Some(version) = request.header("mcp-protocol-version")
            && !PROTOCOL_VERSIONS.contains(&version)
        {
            return Response::json(
                400,
                &rpc_error(Value::Null, -32600, "unsupported MCP-Protocol-Version"),
            );
        }
        let Some(id) = id else {
            // A notification: accepted, nothing to say.
            return Response::new(202);
        };
        let answer = match method {
            "ping" => rpc_result(id, json!({})),
            "tools/list" => {
                let tools: Vec<Value> = self
                    .config
                    .tools
                    .iter()
                    .map(|tool| {
                        json!({
                            "name": tool.name,
                            "description": tool.description,
                            "inputSchema": {"type": "object", "properties": {}, "additionalProperties": true}
                        })
                    })
                    .collect();
                rpc_result(id, json!({"tools": tools}))
            }
            "tools/call" => {
                let name = message
                    .pointer("/params/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if self.config.tools.iter().any(|tool| tool.name == name) {
                    let arguments = message
                        .pointer("/params/arguments")
                        .cloned()
                        .unwrap_or(json!({}));
                    let text = format!("{} ran {name} with {arguments}", self.id());
                    rpc_result(
                        id,
                        json!({"content": [{"type": "text", "text": text}], "isError": false}),
                    )
                } else {
                    rpc_error(id, -32602, &format!("unknown tool `{name}`"))
                }
            }
            other => rpc_error(id, -32601, &format!("method `{other}` not found")),
        };
        self.reply(answer)
    }

    fn reply(&self, message: Value) -> Response {
        if self.config.sse {
            let body = format!("event: message\ndata: {message}\n\n");
            Response::new(200)
                .with_header("content-type", "text/event-stream")
                .with_body(body.into_bytes())
        } else {
            Response::json(200, &message)
        }
    }
}

fn rpc_result(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn rpc_error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

impl Handler for McpMock {
    fn handle(&self, request: Request) -> Response {
        let response = self
            .answer(&request)
            .with_header("x-mock-upstream", self.id());
        self.recorder.record(&request, response.status);
        response
    }
}

impl Admin for McpMock {
    fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}
