//! The e2e config: the parts of `e2e/cluster.yaml` the plan and the harness read.

use std::path::Path;

use serde::Deserialize;

/// The parts of `e2e/cluster.yaml` the harness needs (the plaintext the mocks must expect).
#[derive(Debug, Clone, Deserialize)]
pub struct E2eConfig {
    /// `${SECRET_DOMAIN}` in the rendered files (Flux substitutes it from `cluster-secrets`).
    #[serde(default)]
    pub cloudflare_domain: String,
    #[serde(default)]
    pub ai_gateway_azure_deployments: Vec<AzureDeployment>,
    #[serde(default)]
    pub ai_gateway_mcp_servers: Vec<McpServer>,
    /// Issue 16: the other providers (what the mocks must expect).
    #[serde(default)]
    pub ai_gateway_openai_backends: Vec<ProviderEntry>,
    #[serde(default)]
    pub ai_gateway_anthropic_backends: Vec<ProviderEntry>,
    #[serde(default)]
    pub ai_gateway_bedrock_backends: Vec<ProviderEntry>,
    /// Client keys, in file order: the first one speaks for the ordinary checks.
    #[serde(default)]
    pub ai_gateway_client_keys: Vec<ClientKey>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AzureDeployment {
    pub name: String,
    pub host: String,
    pub api_key: String,
    pub models: Vec<Model>,
}

/// A model of an Azure resource: its name, or `{name, deployment}` when the Azure deployment is
/// named differently.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Model {
    Name(String),
    Mapped {
        name: String,
        #[serde(default)]
        deployment: Option<String>,
    },
}

impl Model {
    /// The Azure deployment name the mock must accept.
    pub fn deployment(&self) -> &str {
        match self {
            Model::Name(name) => name,
            Model::Mapped { name, deployment } => deployment.as_deref().unwrap_or(name),
        }
    }
}

/// An entry of a provider list: its name and the credential the mock must expect (the API key,
/// or Bedrock's access key id and region).
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderEntry {
    pub name: String,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClientKey {
    pub name: String,
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct McpServer {
    pub name: String,
    pub host: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
}

impl E2eConfig {
    pub fn load(path: &Path) -> Result<E2eConfig, String> {
        let text =
            std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
        serde_saphyr::from_str(&text).map_err(|err| format!("{}: {err}", path.display()))
    }

    /// The credential the mock of provider backend `backend` (`openai-<name>`, …) must expect.
    pub fn provider_credential(&self, backend: &str) -> Option<&str> {
        let lists = [
            ("openai-", &self.ai_gateway_openai_backends),
            ("anthropic-", &self.ai_gateway_anthropic_backends),
            ("bedrock-", &self.ai_gateway_bedrock_backends),
        ];
        lists.iter().find_map(|(prefix, list)| {
            let name = backend.strip_prefix(prefix)?;
            let entry = list.iter().find(|e| e.name == name)?;
            entry.access_key_id.as_deref().or(entry.api_key.as_deref())
        })
    }

    /// The key of client `name`.
    pub fn client_key(&self, name: &str) -> Option<&str> {
        self.ai_gateway_client_keys
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.key.as_str())
    }
}
