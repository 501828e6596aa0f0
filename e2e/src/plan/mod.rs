//! The e2e run as data: every step, derived from the rendered tree and the e2e config.
//! `cargo xtask e2e --plan` prints it; the harness executes the very same list.

mod build;
mod check_specs;
mod config;
mod display;
mod step;
mod traffic_specs;

pub use build::build;
pub use check_specs::check_specs;
pub use config::{AzureDeployment, ClientKey, E2eConfig, McpServer, Model, ProviderEntry};
pub use step::{Action, BudgetIdentity, CheckSpec, Layout, MockSpec, Plan, Step, TrafficSpec};
pub use traffic_specs::traffic_specs;

/// kind cluster name.
pub const CLUSTER: &str = "ai-gateway-e2e";
/// renovate: datasource=docker depName=kindest/node
pub const KIND_NODE_IMAGE: &str = "kindest/node:v1.34.0";
/// Tag of the locally built mock image.
pub const MOCK_IMAGE: &str = "ai-gateway-e2e-mock:dev";
/// renovate: datasource=github-releases depName=metallb/metallb
pub const METALLB_VERSION: &str = "v0.13.10";
/// renovate: datasource=github-releases depName=fluxcd/flux2
pub const FLUX_VERSION: &str = "v2.8.8";
/// renovate: datasource=github-releases depName=cert-manager/cert-manager
pub const CERT_MANAGER_VERSION: &str = "v1.21.1";
/// renovate: datasource=github-releases depName=prometheus-operator/prometheus-operator
pub const PROMETHEUS_OPERATOR_VERSION: &str = "v0.86.0";
/// ConfigMap holding the test CA, referenced by the patched BackendTLSPolicies.
pub const TEST_CA_CONFIGMAP: &str = "e2e-test-ca";
/// In-cluster hostname of the OCI mock that serves the rendered tree.
pub const OCI_HOST: &str = "oci.e2e.test";
pub const OCI_PORT: u16 = 5000;
pub const OCI_REPOSITORY: &str = "e2e/rendered";
/// Port of every mock's admin listener (reached from the runner on the container IP).
pub const ADMIN_PORT: u16 = 9000;
/// Names of the mock tools every MCP mock serves; the tool filter decides which are visible.
pub const MCP_TOOLS: &[&str] = &[
    "list_issues",
    "get_issue",
    "create_pull_request",
    "search_code",
];
