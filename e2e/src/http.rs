//! A deliberately small HTTP/1.1 layer over hyper, shared by the mock servers and the clients.
//!
//! Servers take a synchronous [`Handler`] (the mocks keep their state behind a mutex) and can
//! serve plain HTTP or TLS. The client opens one connection per request and can connect to a
//! different address than the `Host` it names (like `curl --resolve`), which is how the harness
//! talks to a LoadBalancer IP under the gateway's hostname.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long one client request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP request as a mock sees it (or as a client sends it).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names are lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// The value of one query parameter (no percent-decoding; the mocks only need plain values).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        let query = self.query.as_deref()?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    /// Header names are lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status)
            .with_header("content-type", "application/json")
            .with_body(value.to_string().into_bytes())
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// The body parsed as JSON, or `Value::Null` when it is not JSON.
    pub fn json_body(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// A request handler. Synchronous on purpose: mocks answer from memory.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> Response;
}

/// A running server; dropping it (or calling [`Server::shutdown`]) stops accepting connections.
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting connections and wait for the accept loop to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Wait until the accept loop ends (it only ends on shutdown).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Bind `addr` (port 0 picks a free port) and serve `handler`, over TLS when `tls` is given.
pub async fn serve(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Arc<dyn Handler>,
) -> std::io::Result<Server> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = &mut stop_rx => break,
                accepted = listener.accept() => accepted,
            };
            let Ok((stream, _peer)) = accepted else {
                continue;
            };
            let handler = Arc::clone(&handler);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    Some(acceptor) => {
                        // A failed handshake (e.g. a client that does not trust the test CA)
                        // just closes the connection, as a real server would.
                        if let Ok(tls_stream) = acceptor.accept(stream).await {
                            serve_connection(TokioIo::new(tls_stream), handler).await;
                        }
                    }
                    None => serve_connection(TokioIo::new(stream), handler).await,
                }
            });
        }
    });
    Ok(Server {
        addr,
        stop: Some(stop_tx),
        task: Some(task),
    })
}

async fn serve_connection<I>(io: I, handler: Arc<dyn Handler>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let handler = Arc::clone(&handler);
        async move {
            let (parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes().to_vec(),
                Err(_) => Vec::new(),
            };
            let request = Request {
                method: parts.method.as_str().to_owned(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().map(str::to_owned),
                headers: parts
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.as_str().to_owned(),
                            String::from_utf8_lossy(value.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body,
            };
            let response = handler.handle(request);
            Ok::<_, std::convert::Infallible>(to_hyper(response))
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

fn to_hyper(response: Response) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .unwrap_or_else(|_| {
            let mut fallback = hyper::Response::new(Full::new(Bytes::from_static(b"bad response")));
            *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}

/// Where a client request goes.
#[derive(Clone)]
pub struct Endpoint {
    /// Sent as `Host` and, over TLS, as SNI and the name the certificate must match.
    pub host: String,
    pub port: u16,
    /// Prefix for every request path (no trailing slash), e.g. `/mcp` or empty.
    pub base_path: String,
    /// Connect here instead of resolving `host` (like `curl --resolve`).
    pub connect_to: Option<SocketAddr>,
    /// `Some` for HTTPS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        write!(
            f,
            "{scheme}://{}:{}{}",
            self.host, self.port, self.base_path
        )?;
        if let Some(addr) = self.connect_to {
            write!(f, " (via {addr})")?;
        }
        Ok(())
    }
}

impl Endpoint {
    /// Parse `http://host[:port][/path]` or `https://…`. HTTPS needs `tls`.
    pub fn parse(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Self, HttpError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| HttpError::Url(format!("{url}: missing scheme")))?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            other => {
                return Err(HttpError::Url(format!(
                    "{url}: unsupported scheme `{other}`"
                )));
            }
        };
        if scheme == "https" && tls.is_none() {
            return Err(HttpError::Url(format!(
                "{url}: https needs a TLS client configuration"
            )));
        }
        let (authority, path) = match rest.find('/') {
            Some(idx) => (&rest[..idx], &rest[idx..]),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| HttpError::Url(format!("{url}: bad port `{port}`")))?;
                (host, port)
            }
            _ => (authority, default_port),
        };
        if host.is_empty() {
            return Err(HttpError::Url(format!("{url}: missing host")));
        }
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            base_path: path.trim_end_matches('/').to_owned(),
            connect_to: None,
            tls: if scheme == "https" { tls } else { None },
        })
    }

    pub fn via(mut self, addr: SocketAddr) -> Self {
        self.connect_to = Some(addr);
        self
    }

    fn host_header(&self) -> String {
        let default_port = if self.tls.is_some() { 443 } else { 80 };
        if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A client-side failure (no HTTP status was received).
#[derive(Debug)]
pub enum HttpError {
    Url(String),
    Connect(String),
    Tls(String),
    Protocol(String),
    Timeout,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Url(msg) => write!(f, "bad URL: {msg}"),
            HttpError::Connect(msg) => write!(f, "cannot connect: {msg}"),
            HttpError::Tls(msg) => write!(f, "TLS handshake failed: {msg}"),
            HttpError::Protocol(msg) => write!(f, "HTTP error: {msg}"),
            HttpError::Timeout => write!(f, "no answer within {}s", REQUEST_TIMEOUT.as_secs()),
        }
    }
}

impl std::error::Error for HttpError {}

/// Send one request on a fresh connection and read the whole response.
pub async fn send(
    endpoint: &Endpoint,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Response, HttpError> {
    tokio::time::timeout(
        REQUEST_TIMEOUT,
        send_inner(endpoint, method, path_and_query, headers, body),
    )
    .await
    .map_err(|_| HttpError::Timeout)?
}

async fn send_inner(
    endpoint: &Endpoint,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Response, HttpError> {
    let stream = match endpoint.connect_to {
        Some(addr) => TcpStream::connect(addr).await,
        None => TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await,
    }
    .map_err(|err| HttpError::Connect(format!("{endpoint:?}: {err}")))?;
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("{}{}", endpoint.base_path, path_and_query))
        .header("host", endpoint.host_header());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|err| HttpError::Protocol(err.to_string()))?;
    match &endpoint.tls {
        Some(config) => {
            let name = ServerName::try_from(endpoint.host.clone())
                .map_err(|err| HttpError::Tls(format!("{}: {err}", endpoint.host)))?;
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
            let tls_stream = connector
                .connect(name, stream)
                .await
                .map_err(|err| HttpError::Tls(err.to_string()))?;
            exchange(TokioIo::new(tls_stream), request).await
        }
        None => exchange(TokioIo::new(stream), request).await,
    }
}

async fn exchange<I>(io: I, request: hyper::Request<Full<Bytes>>) -> Result<Response, HttpError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|err| HttpError::Protocol(err.to_string()))?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| HttpError::Protocol(err.to_string()))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|err| HttpError::Protocol(err.to_string()))?
        .to_bytes();
    driver.abort();
    Ok(Response {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_parse() {
        let endpoint = Endpoint::parse("http://127.0.0.1:8080/mcp/", None).unwrap();
        assert_eq!(
            (
                endpoint.host.as_str(),
                endpoint.port,
                endpoint.base_path.as_str()
            ),
            ("127.0.0.1", 8080, "/mcp")
        );
        let endpoint = Endpoint::parse("http://aiops.example.com", None).unwrap();
        assert_eq!((endpoint.port, endpoint.base_path.as_str()), (80, ""));
        assert!(Endpoint::parse("https://x.example", None).is_err());
        assert!(Endpoint::parse("ftp://x", None).is_err());
        assert!(Endpoint::parse("x.example", None).is_err());
        assert!(Endpoint::parse("http://x:notaport", None).is_err());
    }

    #[test]
    fn query_param() {
        let request = Request {
            method: "POST".into(),
            path: "/".into(),
            query: Some("a=1&api-version=2025-01-01-preview&flag".into()),
            headers: vec![],
            body: vec![],
        };
        assert_eq!(
            request.query_param("api-version"),
            Some("2025-01-01-preview")
        );
        assert_eq!(request.query_param("flag"), Some(""));
        assert_eq!(request.query_param("b"), None);
    }
}
