//! What an AI Gateway without client keys exposes, said at configure time (issue 13).
//!
//! Not an error: the seed's own test configurations have no client keys and must stay valid, and
//! a lab cluster may want exactly that. But the gateway injects credentials that spend money
//! (Azure OpenAI keys) and act for the user (MCP tokens), so an open gateway is named loudly,
//! with the fix. Kept apart from `rules.rs` so that it reads as one decision.

use crate::diag::Diagnostic;
use crate::model::Cluster;
use crate::rules::Sources;

/// `schema::ai_gateway_open` when the AI Gateway is on without `ai_gateway_client_keys`.
pub(crate) fn check(c: &Cluster, src: &Sources<'_>) -> Vec<Diagnostic> {
    if !c.ai_gateway_enabled || !c.ai_gateway_client_keys.is_empty() {
        return Vec::new();
    }
    let mut exposed = Vec::new();
    if !c.ai_gateway_azure_deployments.is_empty() {
        exposed.push(
            if c.ai_gateway_azure_deployments
                .iter()
                .all(|d| d.api_key.is_some())
            {
                "the Azure OpenAI deployments (the gateway adds their api-keys)"
            } else {
                "the Azure OpenAI deployments (the gateway adds their credentials)"
            },
        );
    }
    if !c.ai_gateway_openai_backends.is_empty() {
        exposed.push(
            if c.ai_gateway_openai_backends
                .iter()
                .any(|b| b.api_key.is_some())
            {
                "the OpenAI backends (the gateway adds their keys)"
            } else {
                "the in-cluster OpenAI-compatible model servers"
            },
        );
    }
    if !c.ai_gateway_anthropic_backends.is_empty() {
        exposed.push("the Anthropic backends (the gateway adds their keys)");
    }
    if !c.ai_gateway_bedrock_backends.is_empty() {
        exposed.push("AWS Bedrock (the gateway signs with its access key)");
    }
    let tokens = c.ai_gateway_mcp_enabled
        && c.ai_gateway_mcp_servers
            .iter()
            .any(|s| s.api_key.as_deref().is_some_and(|k| !k.is_empty()));
    if tokens {
        exposed.push("the MCP servers (the gateway adds their tokens)");
    }
    if exposed.is_empty() {
        return Vec::new();
    }
    let mut message = format!(
        "the AI Gateway has no client keys: anyone who reaches aiops.<domain> in your network can use {} without any credential",
        exposed.join(" and ")
    );
    if c.ai_gateway_ratelimit_enabled {
        message.push_str(
            "; the token budget counts per `x-user-id`, a header the caller chooses (requests without it are not limited)",
        );
    }
    let closed_addr = c.ai_gateway_addr.is_some();
    if closed_addr {
        message.push_str(
            "; ai_gateway_addr stays closed until client keys are set (that address would serve plain HTTP)",
        );
    }
    let path = "ai_gateway_enabled";
    let mut d = Diagnostic::warning("schema::ai_gateway_open", path, message).with_help(
        "set `ai_gateway_client_keys: [{name: <client>, key: <random string>}]`: every request then needs `Authorization: Bearer <key>`, the client's name becomes its identity for the budget, and ai_gateway_addr is opened (docs/ai-gateway.md, \"Security model\")",
    );
    d.location = src.locate(path);
    if closed_addr {
        d = d.with_note(
            "the AI gateway's Service is rendered as ClusterIP, not as a LoadBalancer on this address",
            src.locate("ai_gateway_addr"),
        );
    }
    vec![d]
}
