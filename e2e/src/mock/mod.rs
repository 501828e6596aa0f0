//! Mock upstreams: Azure OpenAI, OpenAI / Anthropic / AWS Bedrock (issue 16), an MCP server, and
//! a read-only OCI registry serving the rendered tree as a Flux artifact.
//!
//! Every mock records what it saw and exposes it on a separate plain-HTTP admin listener
//! (`GET /_mock/requests`, `DELETE /_mock/requests`, Azure also `PUT /_mock/usage`), so the
//! harness can assert on the exact upstream request (path, `api-key`, absence of a client
//! `Authorization`) while the gateway only talks to the main listener.

mod azure;
mod mcp;
mod oci;
mod providers;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::http::{self, Handler, Request, Response, Server};
use crate::tls::{self, ServerCert};

pub use azure::{AzureConfig, AzureMock, Usage};
pub use mcp::{McpConfig, McpMock, ToolSpec};
pub use oci::{FLUX_CONFIG_MEDIA_TYPE, FLUX_LAYER_MEDIA_TYPE, OciConfig, OciMock};
pub use providers::{ProviderConfig, ProviderMock, Wire};

/// What one mock process serves. Serialised as JSON into the mock container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MockConfig {
    Azure(AzureConfig),
    Mcp(McpConfig),
    Oci(OciConfig),
    Provider(ProviderConfig),
}

/// Settings every mock shares.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listen {
    /// Shown in the `x-mock-upstream` response header and in the records.
    pub id: String,
    /// Main listener, e.g. `0.0.0.0:443`.
    pub listen: SocketAddr,
    /// Admin listener (plain HTTP), e.g. `0.0.0.0:9000`.
    pub admin: Option<SocketAddr>,
    /// Serve TLS on the main listener with this certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
}

/// PEM certificate chain and key for the main listener.
#[derive(Clone, Serialize, Deserialize)]
pub struct TlsFiles {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFiles").finish_non_exhaustive()
    }
}

impl From<&ServerCert> for TlsFiles {
    fn from(cert: &ServerCert) -> Self {
        Self {
            cert_pem: cert.cert_pem.clone(),
            key_pem: cert.key_pem.clone(),
        }
    }
}

/// One request a mock received, and the status it answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The body as text (all mocked APIs are JSON).
    pub body: String,
    pub status: u16,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        let query = self.query.as_deref()?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }
}

/// The shared request log of one mock.
#[derive(Debug, Default, Clone)]
pub struct Recorder(Arc<Mutex<Vec<Recorded>>>);

impl Recorder {
    pub fn record(&self, request: &Request, status: u16) {
        let entry = Recorded {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            headers: request.headers.clone(),
            body: String::from_utf8_lossy(&request.body).into_owned(),
            status,
        };
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(entry);
    }

    pub fn snapshot(&self) -> Vec<Recorded> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }
}

/// A mock whose admin API the [`AdminHandler`] serves.
pub trait Admin: Send + Sync + 'static {
    fn recorder(&self) -> &Recorder;
    /// Mock-specific admin routes; `None` falls through to the shared ones.
    fn admin_extra(&self, _request: &Request) -> Option<Response> {
        None
    }
}

/// Serves `/_mock/requests` (GET, DELETE), `/healthz`, and the mock's own admin routes.
pub struct AdminHandler<M: Admin>(pub Arc<M>);

impl<M: Admin> Handler for AdminHandler<M> {
    fn handle(&self, request: Request) -> Response {
        if let Some(response) = self.0.admin_extra(&request) {
            return response;
        }
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/healthz") => Response::new(200).with_body(b"ok\n".to_vec()),
            ("GET", "/_mock/requests") => {
                let records = self.0.recorder().snapshot();
                Response::json(200, &serde_json::to_value(records).unwrap_or_default())
            }
            ("DELETE", "/_mock/requests") => {
                self.0.recorder().clear();
                Response::new(204)
            }
            _ => Response::new(404),
        }
    }
}

/// Failure to start a mock.
#[derive(Debug)]
pub enum MockError {
    Config(String),
    Io(std::io::Error),
    Tls(tls::TlsError),
}

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MockError::Config(msg) => write!(f, "bad mock configuration: {msg}"),
            MockError::Io(err) => write!(f, "cannot listen: {err}"),
            MockError::Tls(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for MockError {}

impl From<std::io::Error> for MockError {
    fn from(err: std::io::Error) -> Self {
        MockError::Io(err)
    }
}

impl From<tls::TlsError> for MockError {
    fn from(err: tls::TlsError) -> Self {
        MockError::Tls(err)
    }
}

/// A started mock: its listeners and, for in-process use (tests), its state.
pub struct RunningMock {
    pub main: Server,
    pub admin: Option<Server>,
    pub state: MockState,
}

/// Direct access to a running mock's state.
#[derive(Clone)]
pub enum MockState {
    Azure(Arc<AzureMock>),
    Mcp(Arc<McpMock>),
    Oci(Arc<OciMock>),
    Provider(Arc<ProviderMock>),
}

impl MockState {
    pub fn recorder(&self) -> &Recorder {
        match self {
            MockState::Azure(mock) => mock.recorder(),
            MockState::Mcp(mock) => mock.recorder(),
            MockState::Oci(mock) => mock.recorder(),
            MockState::Provider(mock) => mock.recorder(),
        }
    }
}

impl RunningMock {
    pub fn addr(&self) -> SocketAddr {
        self.main.addr()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(Server::addr)
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.state.recorder().snapshot()
    }

    pub async fn shutdown(self) {
        self.main.shutdown().await;
        if let Some(admin) = self.admin {
            admin.shutdown().await;
        }
    }
}

/// Start the mock `config` describes.
pub async fn start(config: MockConfig) -> Result<RunningMock, MockError> {
    match config {
        MockConfig::Azure(config) => {
            let listen = config.listen.clone();
            let mock = Arc::new(AzureMock::new(config)?);
            let (main, admin) = serve_pair(&listen, Arc::clone(&mock)).await?;
            Ok(RunningMock {
                main,
                admin,
                state: MockState::Azure(mock),
            })
        }
        MockConfig::Mcp(config) => {
            let listen = config.listen.clone();
            let mock = Arc::new(McpMock::new(config)?);
            let (main, admin) = serve_pair(&listen, Arc::clone(&mock)).await?;
            Ok(RunningMock {
                main,
                admin,
                state: MockState::Mcp(mock),
            })
        }
        MockConfig::Provider(config) => {
            let listen = config.listen.clone();
            let mock = Arc::new(ProviderMock::new(config)?);
            let (main, admin) = serve_pair(&listen, Arc::clone(&mock)).await?;
            Ok(RunningMock {
                main,
                admin,
                state: MockState::Provider(mock),
            })
        }
        MockConfig::Oci(config) => {
            let listen = config.listen.clone();
            let mock = Arc::new(OciMock::new(config)?);
            let (main, admin) = serve_pair(&listen, Arc::clone(&mock)).await?;
            Ok(RunningMock {
                main,
                admin,
                state: MockState::Oci(mock),
            })
        }
    }
}

async fn serve_pair<M>(listen: &Listen, mock: Arc<M>) -> Result<(Server, Option<Server>), MockError>
where
    M: Admin + Handler,
{
    let tls = match &listen.tls {
        Some(files) => Some(tls::server_config(&ServerCert {
            cert_pem: files.cert_pem.clone(),
            key_pem: files.key_pem.clone(),
        })?),
        None => None,
    };
    let main = http::serve(listen.listen, tls, Arc::clone(&mock) as Arc<dyn Handler>).await?;
    let admin = match listen.admin {
        Some(addr) => Some(http::serve(addr, None, Arc::new(AdminHandler(mock))).await?),
        None => None,
    };
    Ok((main, admin))
}

/// Read a mock configuration file (JSON).
pub fn load_config(path: &Path) -> Result<MockConfig, MockError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| MockError::Config(format!("{}: {err}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|err| MockError::Config(format!("{}: {err}", path.display())))
}

/// Fetch the request log of a mock through its admin listener.
pub async fn fetch_recorded(admin: &http::Endpoint) -> Result<Vec<Recorded>, http::HttpError> {
    let response = http::send(admin, "GET", "/_mock/requests", &[], Vec::new()).await?;
    if response.status != 200 {
        return Err(http::HttpError::Protocol(format!(
            "admin answered {}",
            response.status
        )));
    }
    serde_json::from_slice(&response.body)
        .map_err(|err| http::HttpError::Protocol(format!("admin sent bad JSON: {err}")))
}
