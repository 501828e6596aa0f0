//! A read-only OCI registry holding one Flux artifact: the rendered tree as a tar+gzip layer.
//!
//! The e2e cluster has no Git server, so Flux's source-controller pulls the rendered files from
//! here through an `OCIRepository` (`insecure: true`, plain HTTP inside the kind network). The
//! distribution API subset: `GET /v2/`, `GET|HEAD /v2/<repo>/manifests/<tag|digest>`,
//! `GET /v2/<repo>/blobs/<digest>`, `GET /v2/<repo>/tags/list`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Admin, Listen, MockError, Recorder};
use crate::digest::sha256_hex;
use crate::http::{Handler, Request, Response};

/// Flux's media type for an artifact's content layer.
pub const FLUX_LAYER_MEDIA_TYPE: &str = "application/vnd.cncf.flux.content.v1.tar+gzip";
/// Flux's media type for an artifact's config blob.
pub const FLUX_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.flux.config.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OciConfig {
    #[serde(flatten)]
    pub listen: Listen,
    /// Repository name, e.g. `e2e/rendered`.
    pub repository: String,
    pub tag: String,
    /// The tar+gzip content layer.
    pub artifact_file: PathBuf,
    /// Shown as the artifact's revision (`org.opencontainers.image.revision`).
    #[serde(default)]
    pub revision: String,
}

pub struct OciMock {
    repository: String,
    tag: String,
    manifest: Vec<u8>,
    manifest_digest: String,
    blobs: Vec<(String, Vec<u8>)>,
    recorder: Recorder,
}

impl OciMock {
    pub fn new(config: OciConfig) -> Result<Self, MockError> {
        let layer = std::fs::read(&config.artifact_file).map_err(|err| {
            MockError::Config(format!("oci: {}: {err}", config.artifact_file.display()))
        })?;
        Ok(Self::from_layer(
            config.repository,
            config.tag,
            &config.revision,
            layer,
        ))
    }

    /// Build the registry content around one layer.
    pub fn from_layer(repository: String, tag: String, revision: &str, layer: Vec<u8>) -> Self {
        let config_blob = b"{}".to_vec();
        let layer_digest = format!("sha256:{}", sha256_hex(&layer));
        let config_digest = format!("sha256:{}", sha256_hex(&config_blob));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": FLUX_CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_blob.len()},
            "layers": [{"mediaType": FLUX_LAYER_MEDIA_TYPE, "digest": layer_digest, "size": layer.len()}],
            "annotations": {
                "org.opencontainers.image.created": "2000-01-01T00:00:00Z",
                "org.opencontainers.image.revision": revision,
                "org.opencontainers.image.source": "cargo-xtask-e2e"
            }
        })
        .to_string()
        .into_bytes();
        let manifest_digest = format!("sha256:{}", sha256_hex(&manifest));
        Self {
            repository,
            tag,
            manifest,
            manifest_digest,
            blobs: vec![(layer_digest, layer), (config_digest, config_blob)],
            recorder: Recorder::default(),
        }
    }

    pub fn manifest_digest(&self) -> &str {
        &self.manifest_digest
    }

    fn answer(&self, request: &Request) -> Response {
        if request.method != "GET" && request.method != "HEAD" {
            return Response::new(405);
        }
        if request.path == "/v2/" || request.path == "/v2" {
            return Response::json(200, &json!({}))
                .with_header("docker-distribution-api-version", "registry/2.0");
        }
        let Some(rest) = request.path.strip_prefix("/v2/") else {
            return oci_error(404, "NAME_UNKNOWN");
        };
        let Some(rest) = rest.strip_prefix(self.repository.as_str()) else {
            return oci_error(404, "NAME_UNKNOWN");
        };
        if rest == "/tags/list" {
            return Response::json(200, &json!({"name": self.repository, "tags": [self.tag]}));
        }
        if let Some(reference) = rest.strip_prefix("/manifests/") {
            if reference == self.tag || reference == self.manifest_digest {
                return Response::new(200)
                    .with_header("content-type", MANIFEST_MEDIA_TYPE)
                    .with_header("docker-content-digest", &self.manifest_digest)
                    .with_body(self.manifest.clone());
            }
            return oci_error(404, "MANIFEST_UNKNOWN");
        }
        if let Some(digest) = rest.strip_prefix("/blobs/") {
            if let Some((_, blob)) = self.blobs.iter().find(|(d, _)| d == digest) {
                return Response::new(200)
                    .with_header("content-type", "application/octet-stream")
                    .with_header("docker-content-digest", digest)
                    .with_body(blob.clone());
            }
            return oci_error(404, "BLOB_UNKNOWN");
        }
        oci_error(404, "NAME_UNKNOWN")
    }
}

fn oci_error(status: u16, code: &str) -> Response {
    Response::json(
        status,
        &json!({"errors": [{"code": code, "message": code.to_lowercase().replace('_', " ")}]}),
    )
}

impl Handler for OciMock {
    fn handle(&self, request: Request) -> Response {
        let response = self.answer(&request);
        self.recorder.record(&request, response.status);
        response
    }
}

impl Admin for OciMock {
    fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}
