//! Every backend of every provider as one list, in failover order.

use crate::model::{Cluster, ProviderModel};

/// (name, priority, models) of one provider entry.
type Entry<'a> = (&'a str, i64, &'a [ProviderModel]);
use crate::names;

/// Which client API a backend answers. AI Gateway v0.4.0 serves OpenAI chat completions
/// (`/v1/chat/completions`) to OpenAI, AzureOpenAI and AWSBedrock backends, and Anthropic's
/// Messages API (`/anthropic/v1/messages`) to Anthropic backends only; neither is translated
/// into the other's backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientApi {
    ChatCompletions,
    Messages,
}

/// One backend of some provider, as the routes see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// The AIServiceBackend (and Envoy Gateway Backend) name.
    pub backend: String,
    /// Where it is written (`ai_gateway_openai_backends[2]`), for diagnostics.
    pub path: String,
    pub api: ClientApi,
    pub priority: i64,
    /// (model clients send, provider's name when it differs), in list order.
    pub models: Vec<(String, Option<String>)>,
}

fn mapped(name: &str, upstream: &str) -> (String, Option<String>) {
    (
        name.to_owned(),
        (upstream != name).then(|| upstream.to_owned()),
    )
}

/// The backends of all four lists, sorted by `priority`; equal priorities keep the order Azure
/// deployments, OpenAI, Anthropic, Bedrock backends, and list order within each (a stable sort).
pub fn upstreams(c: &Cluster) -> Vec<Upstream> {
    let mut all = Vec::new();
    for (i, d) in c.ai_gateway_azure_deployments.iter().enumerate() {
        all.push(Upstream {
            backend: names::azure_backend(&d.name),
            path: format!("ai_gateway_azure_deployments[{i}]"),
            api: ClientApi::ChatCompletions,
            priority: d.priority,
            models: d
                .models
                .iter()
                .map(|m| mapped(m.name(), m.deployment()))
                .collect(),
        });
    }
    let lists: [(&str, ClientApi, Vec<Entry<'_>>); 3] = [
        (
            "ai_gateway_openai_backends",
            ClientApi::ChatCompletions,
            c.ai_gateway_openai_backends
                .iter()
                .map(|b| (b.name.as_str(), b.priority, b.models.as_slice()))
                .collect(),
        ),
        (
            "ai_gateway_anthropic_backends",
            ClientApi::Messages,
            c.ai_gateway_anthropic_backends
                .iter()
                .map(|b| (b.name.as_str(), b.priority, b.models.as_slice()))
                .collect(),
        ),
        (
            "ai_gateway_bedrock_backends",
            ClientApi::ChatCompletions,
            c.ai_gateway_bedrock_backends
                .iter()
                .map(|b| (b.name.as_str(), b.priority, b.models.as_slice()))
                .collect(),
        ),
    ];
    for (key, api, entries) in lists {
        for (i, (name, priority, models)) in entries.into_iter().enumerate() {
            all.push(Upstream {
                backend: names::provider_backend(key, name),
                path: format!("{key}[{i}]"),
                api,
                priority,
                models: models
                    .iter()
                    .map(|m| mapped(m.name(), m.upstream()))
                    .collect(),
            });
        }
    }
    all.sort_by_key(|u| u.priority);
    all
}
