//! An OpenAI-style client: what an application sends to the AI Gateway.

use serde_json::{Value, json};

use crate::http::{self, Endpoint, HttpError};

/// The header the token budget is keyed on (BackendTrafficPolicy `clientSelectors`, `Distinct`).
pub const USER_HEADER: &str = "x-user-id";

/// What came back from one call, status included (a 404 or 429 is an outcome, not an error).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: u16,
    /// `x-mock-upstream`: which mock answered, when one did.
    pub upstream: Option<String>,
    pub body: Value,
}

impl Outcome {
    /// `usage.total_tokens` of a successful answer.
    pub fn total_tokens(&self) -> Option<u64> {
        self.body
            .pointer("/usage/total_tokens")
            .and_then(Value::as_u64)
    }
}

pub struct OpenAiClient {
    endpoint: Endpoint,
    /// Sent as `Authorization: Bearer <key>`, as OpenAI SDKs send their API key.
    api_key: Option<String>,
}

impl OpenAiClient {
    /// `endpoint` is the gateway root; requests go to `/v1/...` below it.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            api_key: None,
        }
    }

    /// The same client with an API key (a client key of the gateway), or without one.
    pub fn with_api_key(&self, key: Option<&str>) -> Self {
        Self {
            endpoint: self.endpoint.clone(),
            api_key: key.map(str::to_owned),
        }
    }

    /// `POST /v1/chat/completions` with one user message.
    pub async fn chat(&self, model: &str, user: Option<&str>) -> Result<Outcome, HttpError> {
        let body = json!({
            "model": model,
            "messages": [{"role": "user", "content": "Say hello to the e2e test."}]
        });
        self.post("/v1/chat/completions", &body, user).await
    }

    /// `POST /anthropic/v1/messages` (Anthropic's Messages API, which AI Gateway v0.4.0 serves
    /// to `Anthropic` backends) with one user message.
    pub async fn messages(&self, model: &str, user: Option<&str>) -> Result<Outcome, HttpError> {
        let body = json!({
            "model": model,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Say hello to the e2e test."}]
        });
        self.post("/anthropic/v1/messages", &body, user).await
    }

    /// `POST /v1/embeddings` with one input.
    pub async fn embeddings(&self, model: &str, user: Option<&str>) -> Result<Outcome, HttpError> {
        let body = json!({"model": model, "input": "e2e"});
        self.post("/v1/embeddings", &body, user).await
    }

    async fn post(
        &self,
        path: &str,
        body: &Value,
        user: Option<&str>,
    ) -> Result<Outcome, HttpError> {
        let mut headers = vec![
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ];
        if let Some(user) = user {
            headers.push((USER_HEADER, user));
        }
        let bearer = self.api_key.as_ref().map(|key| format!("Bearer {key}"));
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer));
        }
        let response = http::send(
            &self.endpoint,
            "POST",
            path,
            &headers,
            body.to_string().into_bytes(),
        )
        .await?;
        Ok(Outcome {
            status: response.status,
            upstream: response.header("x-mock-upstream").map(str::to_owned),
            body: response.json_body(),
        })
    }
}
