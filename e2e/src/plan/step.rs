//! The plan's data: steps, their actions, and the mocks, checks and traffic they describe.

use std::path::PathBuf;

use serde_json::Value;

use crate::checks::Expected;
use crate::gateway::{CostType, GatewayView};
use crate::rendered::FluxKustomization;

/// A mock container to start.
#[derive(Debug, Clone, PartialEq)]
pub enum MockSpec {
    Azure {
        name: String,
        hostname: String,
        port: u16,
        api_key: String,
        deployments: Vec<String>,
    },
    Mcp {
        name: String,
        hostname: String,
        port: u16,
        path: String,
        api_key: Option<String>,
        api_key_header: Option<String>,
    },
    Oci {
        name: String,
        hostname: String,
        port: u16,
    },
    /// Issue 16: an OpenAI, Anthropic or Bedrock endpoint (mock::providers).
    Provider {
        name: String,
        hostname: String,
        port: u16,
        wire: crate::mock::Wire,
        tls: bool,
        credential: Option<String>,
        region: Option<String>,
        prefix: String,
        models: Vec<String>,
    },
}

impl MockSpec {
    pub fn name(&self) -> &str {
        match self {
            MockSpec::Azure { name, .. }
            | MockSpec::Mcp { name, .. }
            | MockSpec::Oci { name, .. }
            | MockSpec::Provider { name, .. } => name,
        }
    }

    pub fn hostname(&self) -> &str {
        match self {
            MockSpec::Azure { hostname, .. }
            | MockSpec::Mcp { hostname, .. }
            | MockSpec::Oci { hostname, .. }
            | MockSpec::Provider { hostname, .. } => hostname,
        }
    }
}

/// A verification group and the objects the rendered tree says must pass it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    pub check: &'static str,
    /// API group/version/kind to list (`v1/Pod` for core).
    pub api_version: &'static str,
    pub kind: &'static str,
    pub namespace: String,
    pub expected: Vec<Expected>,
}

/// A traffic check. `client` is the client key (by name, from e2e/cluster.yaml) a request
/// carries as `Authorization: Bearer <key>`; `None` when the route takes no client keys.
#[derive(Debug, Clone, PartialEq)]
pub enum TrafficSpec {
    Route {
        model: String,
        backend: String,
        deployment: String,
        client: Option<String>,
    },
    /// Issue 16: a model whose first backend is an OpenAI, Anthropic or Bedrock one: the request
    /// (chat completions, or Anthropic messages) reaches that provider's mock in its wire format.
    Provider {
        model: String,
        backend: String,
        wire: crate::mock::Wire,
        /// The model id the provider must receive (the `modelNameOverride`, else the model).
        upstream_model: String,
        client: Option<String>,
    },
    UnknownModel {
        model: String,
        client: Option<String>,
    },
    /// Client keys are enforced: no key and a wrong key get 401 from the gateway on the model
    /// route (and on the MCP endpoint, when it has client keys too), no upstream reached.
    ClientKeys {
        model: String,
        header: String,
        mcp_path: Option<String>,
    },
    Failover {
        model: String,
        stop: String,
        expect: String,
        client: Option<String>,
        /// The route's failover policy retries a connect failure on the next priority, so the
        /// very first request after the stop must succeed.
        first_try: bool,
    },
    Budget {
        header: String,
        limit: u64,
        cost: CostType,
        /// `shared: true`: requests alternate between these models and still share one budget.
        shared: bool,
        models: Vec<String>,
        identity: BudgetIdentity,
    },
    Mcp {
        route: String,
        path: String,
        backends: Vec<String>,
        client: Option<String>,
    },
}

/// Whose budget the budget check spends.
#[derive(Debug, Clone, PartialEq)]
pub enum BudgetIdentity {
    /// The client names itself in the budget header (no client keys set it); `client` is the
    /// key the requests carry if the route needs one.
    Header { client: Option<String> },
    /// Client keys: the gateway writes the key's name into the budget header
    /// (`forwardClientIDHeader`), replacing the client's own. `client` spends its budget while
    /// sending a different made-up header value each time; `control` is another client.
    ClientKey { client: String, control: String },
}

/// One thing the harness does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Run this program with these arguments (and these extra environment variables).
    Run {
        program: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
    },
    /// Write the `docker save` archive of the static mock binary and `docker load` it.
    LoadMockImage {
        binary: PathBuf,
    },
    /// Pack the rendered `kubernetes/` tree as the Flux artifact the OCI mock serves.
    PackArtifact,
    StartMock(MockSpec),
    /// Add `hosts` entries for the mocks to CoreDNS and restart it.
    PatchCoreDns,
    /// MetalLB address pool carved out of the kind docker network.
    MetalLbPool,
    /// Secret `sops-age` in `flux-system` from the age key (via the API, never a file).
    AgeSecret {
        key_file: PathBuf,
    },
    /// Write a HelmRelease's `spec.values` as a Helm values file.
    WriteValues {
        path: PathBuf,
        values: Value,
        source: String,
    },
    /// Apply a generated object (server-side apply through the API).
    Apply {
        what: String,
        object: Value,
    },
    /// Wait until a Flux Kustomization is Ready.
    WaitKustomization {
        namespace: String,
        name: String,
        minutes: u64,
    },
    Check(CheckSpec),
    Traffic(TrafficSpec),
    /// Issue 13: a check that the AI Gateway is closed by default (crate::hardening).
    Hardening(crate::hardening::HardeningSpec),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub title: String,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Flux Kustomizations the run waits for, in dependency order.
    pub kustomizations: Vec<FluxKustomization>,
    pub view: GatewayView,
}

/// Where things live for one run.
#[derive(Debug, Clone)]
pub struct Layout {
    pub workspace: PathBuf,
    pub rendered: PathBuf,
    /// Scratch directory for Helm values files and archives (removed at the end).
    pub scratch: PathBuf,
    pub age_key: PathBuf,
}
