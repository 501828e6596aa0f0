//! Azure OpenAI, as the AI Gateway's `AzureOpenAI` translator calls it.
//!
//! `POST /openai/deployments/<deployment>/chat/completions?api-version=<v>` and
//! `…/embeddings?api-version=<v>`, authenticated by the `api-key` header (what an `AzureAPIKey`
//! BackendSecurityPolicy injects). A request is refused when:
//! - `api-key` is missing or wrong (401, as Azure does);
//! - it carries any `Authorization` header: Azure key auth never uses one, so its presence means
//!   the gateway used the wrong policy type (`APIKey` sends `Authorization: Bearer`) or passed a
//!   client's credential through (401, code `UnexpectedAuthorization`);
//! - `api-version` is missing (400), the deployment is not one this resource has (404
//!   `DeploymentNotFound`), or the body is not the right JSON (400).
//!
//! Answers carry the `usage` token counts the test chose (changeable at run time through the
//! admin API) and the header `x-mock-upstream: <id>`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Admin, Listen, MockError, Recorder};
use crate::http::{Handler, Request, Response};

/// Token counts reported in every answer's `usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    pub fn total(self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AzureConfig {
    #[serde(flatten)]
    pub listen: Listen,
    /// The key the `api-key` header must carry.
    pub api_key: String,
    /// Deployment names this resource has; empty accepts any.
    #[serde(default)]
    pub deployments: Vec<String>,
    pub usage: Usage,
}

pub struct AzureMock {
    id: String,
    api_key: String,
    deployments: Vec<String>,
    usage: Mutex<Usage>,
    recorder: Recorder,
    counter: AtomicU64,
}

impl AzureMock {
    pub fn new(config: AzureConfig) -> Result<Self, MockError> {
        if config.api_key.is_empty() {
            return Err(MockError::Config("azure: api_key must not be empty".into()));
        }
        Ok(Self {
            id: config.listen.id,
            api_key: config.api_key,
            deployments: config.deployments,
            usage: Mutex::new(config.usage),
            recorder: Recorder::default(),
            counter: AtomicU64::new(0),
        })
    }

    pub fn set_usage(&self, usage: Usage) {
        *self
            .usage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = usage;
    }

    fn usage(&self) -> Usage {
        *self
            .usage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn answer(&self, request: &Request) -> Response {
        let Some(rest) = request.path.strip_prefix("/openai/deployments/") else {
            return azure_error(404, "404", "Resource not found");
        };
        let Some((deployment, operation)) = rest.split_once('/') else {
            return azure_error(404, "404", "Resource not found");
        };
        if operation != "chat/completions" && operation != "embeddings" {
            return azure_error(404, "404", "Resource not found");
        }
        if request.method != "POST" {
            return azure_error(405, "405", "only POST is supported");
        }
        if request.header("authorization").is_some() {
            return azure_error(
                401,
                "UnexpectedAuthorization",
                "an Authorization header reached Azure: API-key auth uses only the `api-key` header",
            );
        }
        match request.header("api-key") {
            Some(key) if key == self.api_key => {}
            Some(_) => {
                return azure_error(
                    401,
                    "401",
                    "Access denied due to invalid subscription key or wrong API endpoint",
                );
            }
            None => {
                return azure_error(401, "401", "Access denied due to missing subscription key");
            }
        }
        if request.query_param("api-version").is_none_or(str::is_empty) {
            return azure_error(
                400,
                "MissingApiVersionParameter",
                "the api-version query parameter is required",
            );
        }
        if !self.deployments.is_empty() && !self.deployments.iter().any(|d| d == deployment) {
            return azure_error(
                404,
                "DeploymentNotFound",
                &format!(
                    "the API deployment `{deployment}` does not exist on `{}`",
                    self.id
                ),
            );
        }
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&request.body) else {
            return azure_error(400, "BadRequest", "the request body is not JSON");
        };
        let usage = self.usage();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let payload = if operation == "chat/completions" {
            if !body
                .get("messages")
                .is_some_and(serde_json::Value::is_array)
            {
                return azure_error(400, "BadRequest", "`messages` must be an array");
            }
            chat_completion(&self.id, n, deployment, usage)
        } else {
            if body.get("input").is_none() {
                return azure_error(400, "BadRequest", "`input` is required");
            }
            json!({
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 0.5, 1.0]}],
                "model": deployment,
                "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}
            })
        };
        Response::json(200, &payload)
    }
}

fn azure_error(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

impl Handler for AzureMock {
    fn handle(&self, request: Request) -> Response {
        let response = self
            .answer(&request)
            .with_header("x-mock-upstream", &self.id);
        self.recorder.record(&request, response.status);
        response
    }
}

impl Admin for AzureMock {
    fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    fn admin_extra(&self, request: &Request) -> Option<Response> {
        if request.path != "/_mock/usage" {
            return None;
        }
        Some(match request.method.as_str() {
            "GET" => Response::json(200, &serde_json::to_value(self.usage()).unwrap_or_default()),
            "PUT" => match serde_json::from_slice::<Usage>(&request.body) {
                Ok(usage) => {
                    self.set_usage(usage);
                    Response::new(204)
                }
                Err(err) => Response::new(400).with_body(err.to_string().into_bytes()),
            },
            _ => Response::new(405),
        })
    }
}

/// An OpenAI chat-completion answer from the mock `id` (its `n`th), for `model`, with `usage`:
/// what the Azure OpenAI and the OpenAI-compatible mocks both return.
pub(super) fn chat_completion(id: &str, n: u64, model: &str, usage: Usage) -> serde_json::Value {
    json!({
        "id": format!("chatcmpl-{id}-{n}"),
        "object": "chat.completion",
        "created": 1_700_000_000u64,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": format!("{id} answered for {model}")},
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total()
        }
    })
}
