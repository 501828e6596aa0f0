//! OpenAI, Anthropic and AWS Bedrock, as the AI Gateway v0.4.0 translators call them (issue 16).
//!
//! One mock speaks one provider's wire format (`wire`), enough to check what the gateway sends:
//!
//! - **OpenAI** (`OpenAI` schema, `APIKey` policy): `POST /<prefix>/chat/completions` (the
//!   prefix is the schema's `version`, `v1` by default) with `Authorization: Bearer <key>`; with
//!   no `credential` configured (an in-cluster model server) any `Authorization` is refused, since
//!   the gateway must not forward a client's.
//! - **Anthropic** (`Anthropic` schema, `AnthropicAPIKey` policy): `POST /v1/messages` with
//!   `x-api-key: <key>` and no `Authorization`; the body needs `max_tokens` and `messages`.
//! - **Bedrock** (`AWSBedrock` schema, `AWSCredentials` policy): `POST /model/<model id>/converse`
//!   signed with SigV4: `Authorization: AWS4-HMAC-SHA256 Credential=<access key id>/<date>/
//!   <region>/bedrock/aws4_request, SignedHeaders=…, Signature=…` and `X-Amz-Date`. The mock
//!   checks the signature's presence and scope (key id, region, service), not its value: that
//!   would need the secret key and the exact bytes Envoy sends, and AWS's own check is out of
//!   reach here.
//!
//! Every request's model (in the body, or in the Bedrock path) must be one the mock serves, so a
//! missing `modelNameOverride` shows as a 404. Answers carry the configured token counts in the
//! provider's own `usage` shape, which the gateway reads for the token budget, and the header
//! `x-mock-upstream: <id>`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Admin, Listen, MockError, Recorder, Usage};
use crate::http::{Handler, Request, Response};

/// Which provider the mock imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wire {
    OpenAi,
    Anthropic,
    Bedrock,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderConfig {
    #[serde(flatten)]
    pub listen: Listen,
    pub wire: Wire,
    /// The API key (OpenAI, Anthropic) or the access key id (Bedrock) requests must carry; `None`
    /// for an OpenAI-compatible server without credentials.
    #[serde(default)]
    pub credential: Option<String>,
    /// Bedrock: the region the signature must be scoped to.
    #[serde(default)]
    pub region: Option<String>,
    /// OpenAI: the path prefix (the schema's `version`); default `v1`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Model ids this provider serves; empty accepts any.
    #[serde(default)]
    pub models: Vec<String>,
    pub usage: Usage,
}

pub struct ProviderMock {
    config: ProviderConfig,
    recorder: Recorder,
    counter: AtomicU64,
}

impl ProviderMock {
    pub fn new(config: ProviderConfig) -> Result<Self, MockError> {
        if config.wire != Wire::OpenAi && config.credential.as_deref().is_none_or(str::is_empty) {
            return Err(MockError::Config(format!(
                "{}: {:?} needs a credential",
                config.listen.id, config.wire
            )));
        }
        if config.wire == Wire::Bedrock && config.region.as_deref().is_none_or(str::is_empty) {
            return Err(MockError::Config(format!(
                "{}: Bedrock needs a region",
                config.listen.id
            )));
        }
        Ok(Self {
            config,
            recorder: Recorder::default(),
            counter: AtomicU64::new(0),
        })
    }

    fn serves(&self, model: &str) -> bool {
        self.config.models.is_empty() || self.config.models.iter().any(|m| m == model)
    }

    fn answer(&self, request: &Request) -> Response {
        if request.method != "POST" {
            return error(self.config.wire, 405, "only POST is supported");
        }
        match self.config.wire {
            Wire::OpenAi => self.openai(request),
            Wire::Anthropic => self.anthropic(request),
            Wire::Bedrock => self.bedrock(request),
        }
    }

    fn openai(&self, request: &Request) -> Response {
        let prefix = self.config.prefix.as_deref().unwrap_or("v1");
        if request.path != format!("/{prefix}/chat/completions") {
            return error(Wire::OpenAi, 404, "unknown path");
        }
        let auth = request.header("authorization");
        match (&self.config.credential, auth) {
            (Some(key), Some(got)) if got == format!("Bearer {key}") => {}
            (Some(_), _) => return error(Wire::OpenAi, 401, "Incorrect API key provided"),
            (None, Some(_)) => {
                return error(
                    Wire::OpenAi,
                    401,
                    "an Authorization header reached a server without credentials: the gateway forwarded the client's",
                );
            }
            (None, None) => {}
        }
        let Some(body) = json_body(request) else {
            return error(Wire::OpenAi, 400, "the request body is not JSON");
        };
        let model = body["model"].as_str().unwrap_or_default();
        if !self.serves(model) {
            return error(
                Wire::OpenAi,
                404,
                &format!("The model `{model}` does not exist"),
            );
        }
        if !body["messages"].is_array() {
            return error(Wire::OpenAi, 400, "`messages` must be an array");
        }
        let u = self.config.usage;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        Response::json(
            200,
            &super::azure::chat_completion(&self.config.listen.id, n, model, u),
        )
    }

    fn anthropic(&self, request: &Request) -> Response {
        if request.path != "/v1/messages" {
            return error(Wire::Anthropic, 404, "unknown path");
        }
        if request.header("authorization").is_some() {
            return error(
                Wire::Anthropic,
                401,
                "an Authorization header reached Anthropic: the key belongs in x-api-key",
            );
        }
        if request.header("x-api-key") != self.config.credential.as_deref() {
            return error(Wire::Anthropic, 401, "invalid x-api-key");
        }
        let Some(body) = json_body(request) else {
            return error(Wire::Anthropic, 400, "the request body is not JSON");
        };
        let model = body["model"].as_str().unwrap_or_default();
        if !self.serves(model) {
            return error(Wire::Anthropic, 404, &format!("model: {model}"));
        }
        if !body["messages"].is_array() || !body["max_tokens"].is_u64() {
            return error(
                Wire::Anthropic,
                400,
                "`messages` and `max_tokens` are required",
            );
        }
        let u = self.config.usage;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        Response::json(
            200,
            &json!({
                "id": format!("msg_{}_{n}", self.config.listen.id),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": format!("{} answered for {model}", self.config.listen.id)}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens}
            }),
        )
    }

    fn bedrock(&self, request: &Request) -> Response {
        let Some(rest) = request.path.strip_prefix("/model/") else {
            return error(Wire::Bedrock, 404, "unknown path");
        };
        let Some((encoded, op)) = rest.rsplit_once('/') else {
            return error(Wire::Bedrock, 404, "unknown path");
        };
        if op != "converse" {
            return error(Wire::Bedrock, 404, "only converse is mocked");
        }
        if let Err(why) = self.check_sigv4(request) {
            return error(Wire::Bedrock, 403, &why);
        }
        let model = percent_decode(encoded);
        if !self.serves(&model) {
            return error(
                Wire::Bedrock,
                404,
                &format!("The provided model identifier is invalid: {model}"),
            );
        }
        let Some(body) = json_body(request) else {
            return error(Wire::Bedrock, 400, "the request body is not JSON");
        };
        if !body["messages"].is_array() {
            return error(Wire::Bedrock, 400, "`messages` must be an array");
        }
        let u = self.config.usage;
        Response::json(
            200,
            &json!({
                "output": {"message": {"role": "assistant", "content": [{"text": format!("{} answered for {model}", self.config.listen.id)}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": u.prompt_tokens, "outputTokens": u.completion_tokens, "totalTokens": u.total()},
                "metrics": {"latencyMs": 1}
            }),
        )
    }

    /// A SigV4 `Authorization` scoped to the configured key id, region and service `bedrock`.
    fn check_sigv4(&self, request: &Request) -> Result<(), String> {
        let auth = request
            .header("authorization")
            .ok_or("Missing Authentication Token")?;
        let rest = auth
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or("the Authorization header is not a SigV4 signature")?;
        let field = |name: &str| {
            rest.split(',')
                .map(str::trim)
                .find_map(|part| part.strip_prefix(name))
        };
        let credential = field("Credential=").ok_or("the signature has no Credential")?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [key_id, date, region, service, terminal] = scope[..] else {
            return Err(format!("malformed credential scope `{credential}`"));
        };
        if Some(key_id) != self.config.credential.as_deref() {
            return Err("The security token included in the request is invalid".into());
        }
        if Some(region) != self.config.region.as_deref() {
            return Err(format!(
                "Credential should be scoped to a valid region, not `{region}`"
            ));
        }
        if service != "bedrock" || terminal != "aws4_request" {
            return Err(format!(
                "Credential should be scoped to service bedrock, not `{service}`"
            ));
        }
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("bad date `{date}` in the credential scope"));
        }
        if field("SignedHeaders=").is_none_or(|h| !h.split(';').any(|h| h == "host")) {
            return Err("the signature does not sign the host".into());
        }
        if field("Signature=").is_none_or(|s| s.len() != 64) {
            return Err("the signature has no 64-digit Signature".into());
        }
        if request.header("x-amz-date").is_none() {
            return Err("X-Amz-Date is missing".into());
        }
        Ok(())
    }
}

fn json_body(request: &Request) -> Option<Value> {
    serde_json::from_slice(&request.body).ok()
}

/// `%2F` and friends in a Bedrock model id path segment (the translator escapes it with Go's
/// `url.PathEscape`: `/` in ARNs).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// An error in the provider's own shape.
fn error(wire: Wire, status: u16, message: &str) -> Response {
    let body = match wire {
        Wire::OpenAi => json!({"error": {"message": message, "type": "invalid_request_error"}}),
        Wire::Anthropic => {
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}})
        }
        Wire::Bedrock => json!({"message": message}),
    };
    Response::json(status, &body)
}

impl Handler for ProviderMock {
    fn handle(&self, request: Request) -> Response {
        let response = self
            .answer(&request)
            .with_header("x-mock-upstream", &self.config.listen.id);
        self.recorder.record(&request, response.status);
        response
    }
}

impl Admin for ProviderMock {
    fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}
