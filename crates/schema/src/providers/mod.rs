//! The AI providers beyond Azure API keys (issue 16): Entra ID for Azure deployments, OpenAI and
//! OpenAI-compatible endpoints (external or in-cluster), Anthropic and AWS Bedrock.
//!
//! - [`spec`]: their keys, for the one spec table (checks, defaults, JSON Schema, docs);
//! - [`rules`]: what relates their keys (exactly one credential, one target, APIs that cannot
//!   fail over to each other, names);
//! - [`routes`]: every backend of every provider as one list, in failover order.
//!
//! What each provider needs from AI Gateway v0.4.0 (schema, credential type, Secret keys) was
//! read in upstream's controller and external processor at that tag; docs/ai-gateway.md,
//! "Providers", says what and where.

mod routes;
pub(crate) mod rules;
mod spec;

pub use routes::{Upstream, upstreams};
pub(crate) use spec::{ANTHROPIC_BACKEND, BEDROCK_BACKEND, ENTRA_ID, OPENAI_BACKEND, PRIORITY};

/// List items that need exactly one of two keys: checked by `rules`, said in the JSON Schema.
pub(crate) const EXACTLY_ONE_OF: &[(&str, [&str; 2])] = &[
    ("ai_gateway_azure_deployments", ["api_key", "entra_id"]),
    ("ai_gateway_openai_backends", ["host", "service"]),
];
