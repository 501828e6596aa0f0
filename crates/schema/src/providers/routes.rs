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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        AnthropicBackend, AzureDeployment, BedrockBackend, Model, OpenAiBackend, ProviderModel,
    };

    fn order(c: &Cluster) -> Vec<(String, ClientApi)> {
        upstreams(c)
            .into_iter()
            .map(|u| (u.backend, u.api))
            .collect()
    }

    #[test]
    fn lists_in_order_then_priority() {
        let mut c = Cluster {
            ai_gateway_bedrock_backends: vec![BedrockBackend {
                name: "b".into(),
                models: vec![ProviderModel::Name("m".into())],
                ..Default::default()
            }],
            ai_gateway_anthropic_backends: vec![AnthropicBackend {
                name: "c".into(),
                ..Default::default()
            }],
            ai_gateway_openai_backends: vec![
                OpenAiBackend {
                    name: "o1".into(),
                    ..Default::default()
                },
                OpenAiBackend {
                    name: "o2".into(),
                    ..Default::default()
                },
            ],
            ai_gateway_azure_deployments: vec![AzureDeployment {
                name: "a".into(),
                models: vec![Model::Mapped {
                    name: "m".into(),
                    deployment: "m-prod".into(),
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let names = |c: &Cluster| -> Vec<String> { order(c).into_iter().map(|(b, _)| b).collect() };
        assert_eq!(
            names(&c),
            [
                "azure-a",
                "openai-o1",
                "openai-o2",
                "anthropic-c",
                "bedrock-b"
            ]
        );
        assert_eq!(order(&c)[3].1, ClientApi::Messages);
        assert_eq!(order(&c)[4].1, ClientApi::ChatCompletions);
        // A lower priority goes first; equal ones keep their order (a stable sort).
        c.ai_gateway_azure_deployments[0].priority = 2;
        c.ai_gateway_openai_backends[1].priority = 1;
        assert_eq!(
            names(&c),
            [
                "openai-o1",
                "anthropic-c",
                "bedrock-b",
                "openai-o2",
                "azure-a"
            ]
        );
        let azure = upstreams(&c).pop().unwrap();
        assert_eq!(azure.models, [("m".to_owned(), Some("m-prod".to_owned()))]);
        assert_eq!(azure.path, "ai_gateway_azure_deployments[0]");
    }
}
