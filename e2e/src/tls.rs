//! A throwaway test CA, generated at run time, and the rustls configurations built from it.
//!
//! The mock upstreams serve TLS with certificates this CA issues for the hostnames the rendered
//! `Backend`s name; in the cluster the CA certificate goes into a ConfigMap that the
//! BackendTLSPolicies reference, so Envoy really validates the upstream certificate.
//! Keys never leave memory except into the mock containers (as files inside them).

use std::fmt;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate authority that exists only for one e2e run.
pub struct TestCa {
    cert_pem: String,
    key: KeyPair,
    params: CertificateParams,
}

/// A leaf certificate and its key, both PEM.
#[derive(Clone)]
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCert")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS setup failed: {}", self.0)
    }
}

impl std::error::Error for TlsError {}

impl From<rcgen::Error> for TlsError {
    fn from(err: rcgen::Error) -> Self {
        TlsError(err.to_string())
    }
}

impl From<rustls::Error> for TlsError {
    fn from(err: rustls::Error) -> Self {
        TlsError(err.to_string())
    }
}

impl TestCa {
    /// Generate a fresh CA key and self-signed certificate.
    pub fn generate() -> Result<Self, TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "ai-gateway e2e test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key,
            params,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issue a server certificate valid for `hosts` (DNS names or IP addresses).
    pub fn issue(&self, hosts: &[String]) -> Result<ServerCert, TlsError> {
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params.distinguished_name.push(
            DnType::CommonName,
            hosts.first().map_or("mock", String::as_str),
        );
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Explicit provider: other crates in this build may enable a second rustls backend, in
    // which case the process-wide default is ambiguous.
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server configuration for one certificate chain.
pub fn server_config(cert: &ServerCert) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError(format!("certificate PEM: {err}")))?;
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
        .map_err(|err| TlsError(format!("key PEM: {err}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A rustls client configuration that trusts exactly the CA certificates in `ca_pem`.
pub fn client_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|err| TlsError(format!("CA PEM: {err}")))?;
        roots.add(cert)?;
    }
    if roots.is_empty() {
        return Err(TlsError("CA PEM holds no certificate".into()));
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
