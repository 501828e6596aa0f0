//! The mock upstream containers: starting them, and setting the usage they report.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

use crate::image;
use crate::mock::{
    AzureConfig, Listen, McpConfig, MockConfig, OciConfig, ProviderConfig, TlsFiles, ToolSpec,
    Usage,
};
use crate::plan::{self, MockSpec};

use super::process::command_output;
use super::state::{RunningContainer, State};

/// Usage the Azure mocks report outside the budget check.
pub(super) const DEFAULT_USAGE: Usage = Usage {
    prompt_tokens: 10,
    completion_tokens: 5,
};
/// Path of the artifact inside the OCI mock container.
const ARTIFACT_IN_CONTAINER: &str = "/etc/mock/artifact.tar.gz";

impl State {
    pub(super) async fn start_mock(&mut self, spec: &MockSpec) -> anyhow::Result<()> {
        let admin = Some(format!("0.0.0.0:{}", plan::ADMIN_PORT).parse()?);
        let listen = |port: u16, tls: Option<TlsFiles>| -> anyhow::Result<Listen> {
            Ok(Listen {
                id: spec.name().to_owned(),
                listen: format!("0.0.0.0:{port}").parse()?,
                admin,
                tls,
            })
        };
        let cert = TlsFiles::from(&self.ca.issue(&[spec.hostname().to_owned()])?);
        let config = match spec {
            MockSpec::Azure {
                port,
                api_key,
                deployments,
                ..
            } => MockConfig::Azure(AzureConfig {
                listen: listen(*port, Some(cert))?,
                api_key: api_key.clone(),
                deployments: deployments.clone(),
                usage: DEFAULT_USAGE,
            }),
            MockSpec::Mcp {
                port,
                path,
                api_key,
                api_key_header,
                ..
            } => MockConfig::Mcp(McpConfig {
                listen: listen(*port, Some(cert))?,
                path: path.clone(),
                tools: plan::MCP_TOOLS
                    .iter()
                    .map(|t| ToolSpec {
                        name: (*t).to_owned(),
                        description: format!("{t} (e2e mock)"),
                    })
                    .collect(),
                api_key: api_key.clone(),
                api_key_header: api_key_header.clone(),
                sse: false,
            }),
            MockSpec::Provider {
                port,
                wire,
                tls,
                credential,
                region,
                prefix,
                models,
                ..
            } => MockConfig::Provider(ProviderConfig {
                listen: listen(*port, tls.then_some(cert))?,
                wire: *wire,
                credential: credential.clone(),
                region: region.clone(),
                prefix: Some(prefix.clone()),
                models: models.clone(),
                usage: DEFAULT_USAGE,
            }),
            MockSpec::Oci { port, .. } => MockConfig::Oci(OciConfig {
                listen: listen(*port, None)?,
                repository: plan::OCI_REPOSITORY.to_owned(),
                tag: "latest".to_owned(),
                artifact_file: PathBuf::from(ARTIFACT_IN_CONTAINER),
                revision: "e2e".to_owned(),
            }),
        };
        let (name, tag) = plan::MOCK_IMAGE
            .split_once(':')
            .unwrap_or((plan::MOCK_IMAGE, "latest"));
        let mut request = GenericImage::new(name, tag)
            .with_wait_for(WaitFor::message_on_stdout("e2e-mock ready"))
            .with_network("kind")
            .with_container_name(format!("{}-{}", plan::CLUSTER, spec.name()))
            .with_copy_to(image::MOCK_CONFIG_PATH, serde_json::to_vec(&config)?)
            .with_startup_timeout(Duration::from_secs(60));
        if matches!(spec, MockSpec::Oci { .. }) {
            request = request.with_copy_to(
                ARTIFACT_IN_CONTAINER,
                self.layout.scratch.join("artifact.tar.gz"),
            );
        }
        let container = request
            .start()
            .await
            .with_context(|| format!("cannot start mock `{}`", spec.name()))?;
        let ip = command_output(
            "docker",
            &[
                "inspect",
                "--format",
                "{{(index .NetworkSettings.Networks \"kind\").IPAddress}}",
                container.id(),
            ],
        )
        .await?;
        println!("     {} at {ip}", spec.name());
        self.mocks.insert(
            spec.name().to_owned(),
            RunningContainer {
                container: Some(container),
                ip,
                spec: spec.clone(),
            },
        );
        Ok(())
    }

    pub(super) async fn set_usage(&self, usage: Usage) -> anyhow::Result<()> {
        for mock in self
            .mocks
            .values()
            .filter(|m| matches!(m.spec, MockSpec::Azure { .. }))
        {
            let body = serde_json::to_vec(&usage)?;
            let _ = crate::http::send(&self.admin(mock)?, "PUT", "/_mock/usage", &[], body).await;
        }
        Ok(())
    }
}
