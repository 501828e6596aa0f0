//! What the gateway must send each provider (issue 16), judged from a mock's request log.
//!
//! The counterpart of `traffic::routed_to` for OpenAI, Anthropic and Bedrock backends: the client
//! saw the expected mock answer 200, and that mock recorded the request in its provider's shape —
//! path, credential (Bearer key, `x-api-key`, or a SigV4 signature scoped to the key id, region
//! and service `bedrock`), no client `Authorization` where the provider takes none, and the
//! provider's model id (the `modelNameOverride` where there is one).

use crate::mock::{Recorded, Wire};
use crate::traffic::Verdict;

/// Where one model's request must land, and how it must look there.
#[derive(Debug, Clone, Copy)]
pub struct ProviderRoute<'a> {
    pub model: &'a str,
    /// The model id the provider must receive.
    pub upstream_model: &'a str,
    /// The id of the mock that must answer.
    pub upstream: &'a str,
    pub wire: Wire,
    /// OpenAI: the path prefix.
    pub prefix: &'a str,
    /// The API key (OpenAI, Anthropic) or access key id (Bedrock); `None`: no credential.
    pub credential: Option<&'a str>,
    pub region: Option<&'a str>,
}

/// The path the gateway must call for `route`.
pub fn upstream_path(route: &ProviderRoute<'_>) -> String {
    match route.wire {
        Wire::OpenAi => format!("/{}/chat/completions", route.prefix),
        Wire::Anthropic => "/v1/messages".to_owned(),
        // The translator escapes the model id with Go's `url.PathEscape`, which keeps `:` and
        // `@` but escapes `/` (in ARNs), `;`, `,` and `?`.
        Wire::Bedrock => format!("/model/{}/converse", path_escape(route.upstream_model)),
    }
}

/// The characters of a model id Go's `url.PathEscape` escapes (the ids Bedrock uses are ASCII).
fn path_escape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for c in segment.chars() {
        if c.is_ascii_alphanumeric() || "-._~:@&=+$!*'()".contains(c) {
            out.push(c);
        } else {
            for b in c.to_string().bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

pub fn routed_to_provider(
    route: &ProviderRoute<'_>,
    status: u16,
    upstream: Option<&str>,
    recorded: &[Recorded],
) -> Verdict {
    let model = route.model;
    let expected = route.upstream;
    crate::traffic::answered_by(model, expected, status, upstream)?;
    let path = upstream_path(route);
    let same_path = |r: &&Recorded| r.path == path;
    let hit = recorded
        .iter()
        .rev()
        .filter(same_path)
        .find(|r| r.status == 200)
        .ok_or_else(|| format!("`{expected}` recorded no successful request to {path}"))?;
    let auth = hit.header("authorization");
    match (route.wire, route.credential) {
        (Wire::OpenAi, Some(key)) => {
            if auth != Some(&format!("Bearer {key}")) {
                return Err(format!(
                    "`{expected}` did not get `Authorization: Bearer` with its key"
                ));
            }
        }
        (Wire::OpenAi, None) | (Wire::Anthropic, _) => {
            if auth.is_some() {
                return Err(format!(
                    "an `Authorization` header reached `{expected}`, which takes none"
                ));
            }
        }
        (Wire::Bedrock, key_id) => {
            let auth = auth.ok_or_else(|| format!("`{expected}` got no SigV4 signature"))?;
            let scope = format!("Credential={}/", key_id.unwrap_or_default());
            let region = format!("/{}/bedrock/aws4_request", route.region.unwrap_or_default());
            if !auth.starts_with("AWS4-HMAC-SHA256 ")
                || !auth.contains(&scope)
                || !auth.contains(&region)
            {
                return Err(format!(
                    "`{expected}`: the signature is not scoped to the key id, region and service bedrock"
                ));
            }
        }
    }
    if route.wire == Wire::Anthropic && hit.header("x-api-key") != route.credential {
        return Err(format!("`{expected}` did not get its key in `x-api-key`"));
    }
    if route.wire != Wire::Bedrock {
        let body: serde_json::Value = serde_json::from_str(&hit.body).unwrap_or_default();
        let sent = body["model"].as_str().unwrap_or_default();
        if sent != route.upstream_model {
            return Err(format!(
                "`{expected}` got model `{sent}`, expected `{}`",
                route.upstream_model
            ));
        }
    }
    Ok(format!(
        "model `{model}` → `{expected}` ({:?}, {path}, {})",
        route.wire,
        match (route.wire, route.credential) {
            (Wire::Bedrock, _) => "SigV4",
            (_, Some(_)) => "key injected",
            (_, None) => "no credential",
        }
    ))
}
