//! An MCP client over streamable HTTP: `initialize`, `notifications/initialized`,
//! `tools/list` (following `nextCursor`), `tools/call`, and session teardown.
//!
//! Answers may come as JSON or as an SSE stream; in a stream the client takes the JSON-RPC
//! response whose `id` matches its request and skips anything else (notifications, requests).

use std::fmt;

use serde_json::{Value, json};

use crate::http::{self, Endpoint, HttpError, Response};

/// The protocol revision this client asks for.
pub const CLIENT_PROTOCOL_VERSION: &str = "2025-06-18";

#[derive(Debug)]
pub enum McpError {
    Http(HttpError),
    /// A non-2xx HTTP status.
    Status(u16, String),
    /// A JSON-RPC error object.
    Rpc {
        code: i64,
        message: String,
    },
    /// Anything that is not a well-formed answer.
    Protocol(String),
}

impl fmt::Display for McpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            McpError::Http(err) => write!(f, "{err}"),
            McpError::Status(status, body) => write!(f, "HTTP {status}: {body}"),
            McpError::Rpc { code, message } => write!(f, "JSON-RPC error {code}: {message}"),
            McpError::Protocol(msg) => write!(f, "bad MCP answer: {msg}"),
        }
    }
}

impl std::error::Error for McpError {}

impl From<HttpError> for McpError {
    fn from(err: HttpError) -> Self {
        McpError::Http(err)
    }
}

pub struct McpClient {
    endpoint: Endpoint,
    /// Extra headers on every request (e.g. a client API key).
    headers: Vec<(String, String)>,
    session: Option<String>,
    protocol_version: Option<String>,
    next_id: u64,
}

impl McpClient {
    /// `endpoint` must include the MCP path (e.g. `http://host/mcp`).
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            headers: Vec::new(),
            session: None,
            protocol_version: None,
            next_id: 1,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// Run the handshake: `initialize`, then `notifications/initialized`. Returns the result.
    pub async fn initialize(&mut self) -> Result<Value, McpError> {
        let params = json!({
            "protocolVersion": CLIENT_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "ai-gateway-e2e", "version": env!("CARGO_PKG_VERSION")}
        });
        let (response, result) = self.request("initialize", params).await?;
        self.session = response.header("mcp-session-id").map(str::to_owned);
        self.protocol_version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let answer = self
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        if answer.status != 202 && answer.status != 200 {
            return Err(McpError::Status(
                answer.status,
                String::from_utf8_lossy(&answer.body).into_owned(),
            ));
        }
        Ok(result)
    }

    /// All tool names, in server order, following pagination.
    pub async fn list_tools(&mut self) -> Result<Vec<String>, McpError> {
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        // A bound on pages, so a server that always returns a cursor cannot loop us forever.
        for _ in 0..100 {
            let params = match &cursor {
                Some(cursor) => json!({"cursor": cursor}),
                None => json!({}),
            };
            let (_, result) = self.request("tools/list", params).await?;
            let tools = result
                .get("tools")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    McpError::Protocol("tools/list result has no `tools` array".into())
                })?;
            for tool in tools {
                let name = tool
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| McpError::Protocol("a tool has no `name`".into()))?;
                names.push(name.to_owned());
            }
            cursor = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                return Ok(names);
            }
        }
        Err(McpError::Protocol(
            "tools/list did not end after 100 pages".into(),
        ))
    }

    /// Call a tool; returns the concatenated text contents.
    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Result<String, McpError> {
        let (_, result) = self
            .request("tools/call", json!({"name": name, "arguments": arguments}))
            .await?;
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            return Err(McpError::Protocol(format!(
                "tool `{name}` reported an error: {result}"
            )));
        }
        let content = result
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| McpError::Protocol("tools/call result has no `content`".into()))?;
        Ok(content
            .iter()
            .filter_map(|item| item.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// End the session (`DELETE`); servers may answer 405 if they do not allow it.
    pub async fn close(&mut self) -> Result<(), McpError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let mut headers = self.header_pairs();
        headers.push(("mcp-session-id", session.as_str()));
        let response = http::send(&self.endpoint, "DELETE", "", &headers, Vec::new()).await?;
        match response.status {
            200..=299 | 405 => Ok(()),
            status => Err(McpError::Status(
                status,
                String::from_utf8_lossy(&response.body).into_owned(),
            )),
        }
    }

    fn header_pairs(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    async fn request(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<(Response, Value), McpError> {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self.post(&message).await?;
        if !(200..300).contains(&response.status) {
            return Err(McpError::Status(
                response.status,
                String::from_utf8_lossy(&response.body).into_owned(),
            ));
        }
        let answer = find_answer(&response, id)?;
        if let Some(error) = answer.get("error") {
            return Err(McpError::Rpc {
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        let result = answer
            .get("result")
            .cloned()
            .ok_or_else(|| McpError::Protocol(format!("no result in {answer}")))?;
        Ok((response, result))
    }

    async fn post(&self, message: &Value) -> Result<Response, McpError> {
        let mut headers = self.header_pairs();
        headers.push(("content-type", "application/json"));
        headers.push(("accept", "application/json, text/event-stream"));
        if let Some(session) = &self.session {
            headers.push(("mcp-session-id", session.as_str()));
        }
        if let Some(version) = &self.protocol_version {
            headers.push(("mcp-protocol-version", version.as_str()));
        }
        Ok(http::send(
            &self.endpoint,
            "POST",
            "",
            &headers,
            message.to_string().into_bytes(),
        )
        .await?)
    }
}

/// The JSON-RPC response with `id` in a JSON or SSE body.
fn find_answer(response: &Response, id: u64) -> Result<Value, McpError> {
    let content_type = response.header("content-type").unwrap_or("");
    let text = String::from_utf8_lossy(&response.body);
    let candidates: Vec<Value> = if content_type.starts_with("text/event-stream") {
        sse_data(&text)
            .iter()
            .filter_map(|data| serde_json::from_str(data).ok())
            .collect()
    } else {
        let value: Value = serde_json::from_str(&text)
            .map_err(|err| McpError::Protocol(format!("body is not JSON: {err}")))?;
        match value {
            Value::Array(items) => items,
            other => vec![other],
        }
    };
    candidates
        .into_iter()
        .find(|message| {
            message.get("id").and_then(Value::as_u64) == Some(id) && message.get("method").is_none()
        })
        .ok_or_else(|| McpError::Protocol(format!("no answer with id {id} in: {text}")))
}

/// The `data` payloads of an SSE stream (multi-line data joined with `\n`).
pub fn sse_data(stream: &str) -> Vec<String> {
    let mut events = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in stream.lines() {
        if line.is_empty() {
            if !current.is_empty() {
                events.push(current.join("\n"));
                current.clear();
            }
        } else if let Some(data) = line.strip_prefix("data:") {
            current.push(data.strip_prefix(' ').unwrap_or(data));
        }
    }
    if !current.is_empty() {
        events.push(current.join("\n"));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_parsing() {
        let stream = "event: message\ndata: {\"a\":\ndata: 1}\n\n: comment\nid: 7\ndata: x\n";
        assert_eq!(
            sse_data(stream),
            vec!["{\"a\":\n1}".to_owned(), "x".to_owned()]
        );
    }

    #[test]
    fn answer_skips_notifications_and_other_ids() {
        let body = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n\
                    data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"old\":true}}\n\n\
                    data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"ok\":true}}\n\n";
        let response = Response::new(200)
            .with_header("content-type", "text/event-stream")
            .with_body(body.into());
        let answer = find_answer(&response, 2).unwrap();
        assert_eq!(answer.pointer("/result/ok"), Some(&Value::Bool(true)));
        assert!(find_answer(&response, 3).is_err());
    }
}
