//! The e2e run as data: every step, derived from the rendered tree and the e2e config.
//! `cargo xtask e2e --plan` prints it; the harness executes the very same list.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::checks::Expected;
use crate::gateway::{ClientAuth, CostType, GatewayView};
use crate::rendered::{FluxKustomization, HelmChart, Tree};
use crate::traffic;

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

fn run(program: &str, args: &[&str]) -> Action {
    Action::Run {
        program: program.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: Vec::new(),
    }
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

/// Build the plan from the rendered tree and the e2e config.
pub fn build(layout: &Layout, tree: &Tree, config: &E2eConfig) -> Result<Plan, String> {
    let view = GatewayView::from_tree(tree)?;
    reachable(&view)?;
    let traffic = traffic_specs(&view, config)?;
    let ordered = tree.kustomizations_in_order()?;
    let kustomizations = needed_kustomizations(&ordered, &view.namespace)?;
    let mut steps = Vec::new();

    // Mock image: the e2e crate's own binary, linked statically, wrapped without a base image.
    let target = "x86_64-unknown-linux-gnu";
    let binary = layout
        .workspace
        .join("target/e2e-static")
        .join(target)
        .join("release/e2e-mock");
    steps.push(Step {
        title: "Build the mock upstream image (static binary, no base image)".into(),
        actions: vec![
            Action::Run {
                program: "cargo".into(),
                args: [
                    "build",
                    "--package",
                    "e2e",
                    "--release",
                    "--no-default-features",
                    "--bin",
                    "e2e-mock",
                    "--target",
                    target,
                    "--target-dir",
                ]
                .iter()
                .map(|s| (*s).to_owned())
                .chain([layout
                    .workspace
                    .join("target/e2e-static")
                    .display()
                    .to_string()])
                .collect(),
                env: vec![("RUSTFLAGS".into(), "-C target-feature=+crt-static".into())],
            },
            Action::LoadMockImage { binary },
        ],
    });

    steps.push(Step {
        title: "Create the kind cluster".into(),
        actions: vec![run(
            "kind",
            &[
                "create",
                "cluster",
                "--name",
                CLUSTER,
                "--image",
                KIND_NODE_IMAGE,
                "--wait",
                "180s",
            ],
        )],
    });

    // One mock per rendered Azure host and MCP backend, keyed by the config's plaintext keys.
    let mut mocks = Vec::new();
    let mut azure_hosts = BTreeSet::new();
    for backend in &view.azure {
        if !azure_hosts.insert(backend.host.clone()) {
            continue;
        }
        let deployment = config
            .ai_gateway_azure_deployments
            .iter()
            .find(|d| d.host == backend.host.hostname)
            .ok_or_else(|| {
                format!(
                    "rendered Backend host `{}` is not in the e2e config",
                    backend.host.hostname
                )
            })?;
        mocks.push(MockSpec::Azure {
            name: format!("azure-{}", deployment.name),
            hostname: backend.host.hostname.clone(),
            port: backend.host.port,
            api_key: deployment.api_key.clone(),
            deployments: deployment
                .models
                .iter()
                .map(|m| m.deployment().to_owned())
                .collect(),
        });
    }
    for route in &view.mcp {
        for backend in &route.backends {
            let server = config
                .ai_gateway_mcp_servers
                .iter()
                .find(|s| s.host == backend.host.hostname);
            mocks.push(MockSpec::Mcp {
                name: format!("mcp-{}", backend.name),
                hostname: backend.host.hostname.clone(),
                port: backend.host.port,
                path: backend.path.clone(),
                api_key: server.and_then(|s| s.api_key.clone()),
                api_key_header: backend.api_key_header.clone(),
            });
        }
    }
    for backend in &view.providers {
        let models: Vec<String> = view
            .models
            .iter()
            .flat_map(|(model, targets)| {
                targets
                    .iter()
                    .filter(|t| t.backend == backend.name)
                    .map(move |t| t.deployment.clone().unwrap_or_else(|| model.clone()))
            })
            .collect();
        let credential = config.provider_credential(&backend.name);
        if backend.policy.is_some() && credential.is_none() {
            return Err(format!(
                "rendered AIServiceBackend `{}` has a credential, but e2e/cluster.yaml has none for it",
                backend.name
            ));
        }
        mocks.push(MockSpec::Provider {
            name: backend.name.clone(),
            hostname: backend.host.hostname.clone(),
            port: backend.host.port,
            wire: backend.wire,
            tls: backend.tls,
            credential: credential.map(str::to_owned),
            region: backend.region.clone(),
            prefix: backend.prefix.clone(),
            models,
        });
    }
    mocks.push(MockSpec::Oci {
        name: "oci".into(),
        hostname: OCI_HOST.into(),
        port: OCI_PORT,
    });
    let mut mock_actions = vec![Action::PackArtifact];
    mock_actions.extend(mocks.iter().cloned().map(Action::StartMock));
    mock_actions.push(Action::PatchCoreDns);
    steps.push(Step {
        title: "Start the mock upstreams on the kind network (testcontainers) and resolve their hostnames in the cluster".into(),
        actions: mock_actions,
    });

    let metallb = format!(
        "https://raw.githubusercontent.com/metallb/metallb/{METALLB_VERSION}/config/manifests/metallb-native.yaml"
    );
    steps.push(Step {
        title: "LoadBalancer addresses (MetalLB)".into(),
        actions: vec![
            run("kubectl", &["apply", "-f", &metallb]),
            run(
                "kubectl",
                &[
                    "-n",
                    "metallb-system",
                    "wait",
                    "--for=condition=Available",
                    "deployment/controller",
                    "--timeout=300s",
                ],
            ),
            run(
                "kubectl",
                &[
                    "-n",
                    "metallb-system",
                    "wait",
                    "--for=condition=Ready",
                    "pod",
                    "-l",
                    "app=metallb",
                    "--timeout=300s",
                ],
            ),
            Action::MetalLbPool,
        ],
    });

    // CRDs of kinds the rendered apps use that neither the EG chart nor AI Gateway provide.
    let kinds: BTreeSet<&str> = tree.docs.iter().map(|d| d.kind()).collect();
    let mut crd_actions = Vec::new();
    if kinds.contains("Certificate") || kinds.contains("ClusterIssuer") {
        let url = format!(
            "https://github.com/cert-manager/cert-manager/releases/download/{CERT_MANAGER_VERSION}/cert-manager.crds.yaml"
        );
        crd_actions.push(run("kubectl", &["apply", "--server-side", "-f", &url]));
    }
    if kinds.contains("PodMonitor") || kinds.contains("ServiceMonitor") {
        let url = format!(
            "https://github.com/prometheus-operator/prometheus-operator/releases/download/{PROMETHEUS_OPERATOR_VERSION}/stripped-down-crds.yaml"
        );
        crd_actions.push(run("kubectl", &["apply", "--server-side", "-f", &url]));
    }
    if !crd_actions.is_empty() {
        steps.push(Step {
            title: "CRDs the rendered apps reference (cert-manager, Prometheus) so their Kustomizations can apply".into(),
            actions: crd_actions,
        });
    }

    // Envoy Gateway at bootstrap, like bootstrap/helmfile.d: chart, version and values from the
    // rendered HelmRelease + OCIRepository. Flux adopts the release afterwards.
    let charts = tree.helm_charts()?;
    let eg: &HelmChart = charts
        .iter()
        .find(|c| c.url.ends_with("/gateway-helm"))
        .ok_or("the rendered tree has no Envoy Gateway HelmRelease (chart `…/gateway-helm`)")?;
    let values = layout.scratch.join(format!("{}-values.json", eg.release));
    steps.push(Step {
        title: format!(
            "Envoy Gateway {} from {} (values: spec.values of {})",
            eg.version, eg.url, eg.file
        ),
        actions: vec![
            Action::WriteValues {
                path: values.clone(),
                values: eg.values.clone(),
                source: eg.file.clone(),
            },
            run(
                "helm",
                &[
                    "upgrade",
                    "--install",
                    &eg.release,
                    &eg.url,
                    "--version",
                    &eg.version,
                    "--namespace",
                    &eg.namespace,
                    "--create-namespace",
                    "--values",
                    &values.display().to_string(),
                    "--wait",
                    "--timeout",
                    "10m",
                ],
            ),
        ],
    });

    let flux_install =
        format!("https://github.com/fluxcd/flux2/releases/download/{FLUX_VERSION}/install.yaml");
    let sops_flag = json!([{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--sops-age-secret=sops-age"}]).to_string();
    steps.push(Step {
        title: format!("Flux {FLUX_VERSION} with SOPS decryption (the role flux-instance plays in the template)"),
        actions: vec![
            run("kubectl", &["apply", "--server-side", "-f", &flux_install]),
            run("kubectl", &["-n", "flux-system", "patch", "deployment", "kustomize-controller", "--type", "json", "-p", &sops_flag]),
            run("kubectl", &["-n", "flux-system", "rollout", "status", "deployment/kustomize-controller", "--timeout=300s"]),
            run("kubectl", &["-n", "flux-system", "wait", "--for=condition=Available", "deployment", "--all", "--timeout=300s"]),
            Action::AgeSecret { key_file: layout.age_key.clone() },
        ],
    });

    let mut source_actions = vec![
        Action::Apply {
            what: format!("Namespace {}", view.namespace),
            object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": view.namespace}}),
        },
        Action::Apply {
            what: format!(
                "ConfigMap {}/{TEST_CA_CONFIGMAP} (test CA; data filled at run time)",
                view.namespace
            ),
            object: json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": TEST_CA_CONFIGMAP, "namespace": view.namespace}, "data": {"ca.crt": "<test CA PEM>"}}),
        },
        Action::Apply {
            what: "OCIRepository flux-system/flux-system (the rendered tree, from the OCI mock)"
                .into(),
            object: oci_repository(),
        },
    ];
    for root in root_kustomizations(&ordered, &kustomizations) {
        source_actions.push(Action::Apply {
            what: format!(
                "Kustomization flux-system/{} (path {})",
                str_at(&root, "/metadata/name"),
                str_at(&root, "/spec/path")
            ),
            object: root,
        });
    }
    steps.push(Step {
        title: "Hand the rendered tree to Flux (only the AI Gateway and what it dependsOn; BackendTLSPolicies trust the test CA)".into(),
        actions: source_actions,
    });

    steps.push(Step {
        title: "Wait for the Kustomizations (dependency order)".into(),
        actions: kustomizations
            .iter()
            .map(|ks| Action::WaitKustomization {
                namespace: ks.namespace.clone(),
                name: ks.name.clone(),
                minutes: 15,
            })
            .collect(),
    });

    if !view.budget.is_empty() {
        let eg_ns = eg.namespace.as_str();
        steps.push(Step {
            title:
                "Restart envoy-ratelimit now that Redis is up (it crash-loops until Redis answers)"
                    .into(),
            actions: vec![
                run(
                    "kubectl",
                    &[
                        "-n",
                        eg_ns,
                        "rollout",
                        "restart",
                        "deployment/envoy-ratelimit",
                    ],
                ),
                run(
                    "kubectl",
                    &[
                        "-n",
                        eg_ns,
                        "rollout",
                        "status",
                        "deployment/envoy-ratelimit",
                        "--timeout=300s",
                    ],
                ),
            ],
        });
    }

    steps.push(Step {
        title: "Verification commands of the plan, as checks".into(),
        actions: check_specs(tree, &view, &kustomizations)
            .into_iter()
            .map(Action::Check)
            .collect(),
    });

    steps.push(Step {
        title: format!(
            "Traffic through the AI Gateway (Gateway {}/{}, listener {}, Service {})",
            view.gateway.0,
            view.gateway.1,
            view.listener
                .as_ref()
                .map(|l| format!("{} :{}", l.name, l.port))
                .unwrap_or_default(),
            view.service
                .as_ref()
                .map(|s| format!(
                    "{}/{} ({})",
                    s.namespace,
                    s.name.as_deref().unwrap_or("<chosen by Envoy Gateway>"),
                    s.service_type
                ))
                .unwrap_or_else(|| "found by its owning-gateway labels".into())
        ),
        actions: traffic.into_iter().map(Action::Traffic).collect(),
    });

    steps.push(Step {
        title: "Closed by default (issue 13): forged MCP headers, session seed, retries, Redis, metrics".into(),
        actions: crate::hardening::specs(tree, &view)
            .into_iter()
            .map(Action::Hardening)
            .collect(),
    });

    Ok(Plan {
        steps,
        kustomizations,
        view,
    })
}

/// The harness sends its traffic from outside the cluster to the Gateway's plain-HTTP listener
/// on its LoadBalancer address (MetalLB on kind). Refuse, before anything is created, a tree it
/// could not reach.
fn reachable(view: &GatewayView) -> Result<(), String> {
    if view.listener.is_none() {
        return Err(format!(
            "Gateway {}/{} has no plain HTTP listener the harness can reach without the production certificate",
            view.gateway.0, view.gateway.1
        ));
    }
    if let Some(service) = &view.service
        && service.service_type != "LoadBalancer"
    {
        return Err(format!(
            "the Envoy Service of Gateway {}/{} is {} (no `ai_gateway_addr` in the config, or no `ai_gateway_client_keys`: without them the own address stays closed): the harness reaches the gateway through a LoadBalancer address",
            view.gateway.0, view.gateway.1, service.service_type
        ));
    }
    Ok(())
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The AI Gateway namespace's Kustomizations plus everything they depend on, transitively,
/// in the given (dependency) order.
fn needed_kustomizations(
    ordered: &[FluxKustomization],
    namespace: &str,
) -> Result<Vec<FluxKustomization>, String> {
    let mut needed: BTreeSet<(String, String)> = ordered
        .iter()
        .filter(|ks| ks.namespace == namespace)
        .map(|ks| (ks.namespace.clone(), ks.name.clone()))
        .collect();
    if needed.is_empty() {
        return Err(format!("no Flux Kustomization lives in `{namespace}`"));
    }
    // `ordered` lists dependencies first, so one backward pass closes the set.
    for ks in ordered.iter().rev() {
        if needed.contains(&(ks.namespace.clone(), ks.name.clone())) {
            needed.extend(ks.depends_on.iter().cloned());
        }
    }
    Ok(ordered
        .iter()
        .filter(|ks| needed.contains(&(ks.namespace.clone(), ks.name.clone())))
        .cloned()
        .collect())
}

fn oci_repository() -> Value {
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "OCIRepository",
        "metadata": {"name": "flux-system", "namespace": "flux-system"},
        "spec": {
            "interval": "1m",
            "insecure": true,
            "url": format!("oci://{OCI_HOST}:{OCI_PORT}/{OCI_REPOSITORY}"),
            "ref": {"tag": "latest"}
        }
    })
}

/// One root Kustomization per namespace directory (`kubernetes/apps/<dir>`) that holds a
/// needed app. Its patches make the children read the OCI source, decrypt with SOPS, trust the
/// test CA, and suspend the apps of that namespace the AI Gateway does not need.
fn root_kustomizations(all: &[FluxKustomization], needed: &[FluxKustomization]) -> Vec<Value> {
    let mut by_dir: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for ks in all {
        let Some(dir) = namespace_dir(&ks.file) else {
            continue;
        };
        let entry = by_dir.entry(dir).or_default();
        if needed.contains(ks) {
            entry.0.push(ks.name.clone())
        } else {
            entry.1.push(ks.name.clone())
        }
    }
    let btls_patch = serde_saphyr::to_string(&json!([
        {"op": "remove", "path": "/spec/validation/wellKnownCACertificates"},
        {"op": "add", "path": "/spec/validation/caCertificateRefs",
         "value": [{"group": "", "kind": "ConfigMap", "name": TEST_CA_CONFIGMAP}]}
    ]))
    .unwrap_or_default();
    let child_patch = json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "all"},
        "spec": {
            "sourceRef": {"kind": "OCIRepository", "name": "flux-system", "namespace": "flux-system"},
            "decryption": {"provider": "sops"},
            "patches": [{"target": {"group": "gateway.networking.k8s.io", "kind": "BackendTLSPolicy"}, "patch": btls_patch}]
        }
    });
    by_dir
        .into_iter()
        .filter(|(_, (needed, _))| !needed.is_empty())
        .map(|(dir, (_, unneeded))| {
            let mut patches = vec![json!({
                "target": {"group": "kustomize.toolkit.fluxcd.io", "kind": "Kustomization"},
                "patch": serde_saphyr::to_string(&child_patch).unwrap_or_default()
            })];
            if !unneeded.is_empty() {
                patches.push(json!({
                    "target": {"group": "kustomize.toolkit.fluxcd.io", "kind": "Kustomization", "name": format!("^({})$", unneeded.join("|"))},
                    "patch": serde_saphyr::to_string(&json!({
                        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                        "metadata": {"name": "unneeded"}, "spec": {"suspend": true}
                    })).unwrap_or_default()
                }));
            }
            let name = format!("e2e-{}", dir.rsplit('/').next().unwrap_or(&dir));
            json!({
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": name, "namespace": "flux-system"},
                "spec": {
                    "interval": "10m",
                    "path": format!("./{dir}"),
                    "prune": true,
                    "wait": false,
                    "sourceRef": {"kind": "OCIRepository", "name": "flux-system"},
                    "decryption": {"provider": "sops"},
                    "patches": patches
                }
            })
        })
        .collect()
}

/// `kubernetes/apps/<dir>` for a file under it.
fn namespace_dir(file: &str) -> Option<String> {
    let rest = file.strip_prefix("kubernetes/apps/")?;
    let dir = rest.split('/').next()?;
    rest.contains('/').then(|| format!("kubernetes/apps/{dir}"))
}

fn expected_of(tree: &Tree, kind: &str) -> Vec<Expected> {
    let mut out: Vec<Expected> = tree
        .of_kind(kind)
        .map(|doc| {
            Expected::new(
                kind,
                &tree.effective_namespace(doc).unwrap_or_default(),
                doc.name(),
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The plan's verification commands, with the objects the rendered tree promises.
pub fn check_specs(
    tree: &Tree,
    view: &GatewayView,
    kustomizations: &[FluxKustomization],
) -> Vec<CheckSpec> {
    let ns = view.namespace.clone();
    let ks_expected: Vec<Expected> = kustomizations
        .iter()
        .filter(|ks| ks.namespace == ns)
        .map(|ks| Expected::new("Kustomization", &ks.namespace, &ks.name))
        .collect();
    let ai = |check, kind: &'static str| CheckSpec {
        check,
        api_version: "aigateway.envoyproxy.io/v1alpha1",
        kind,
        namespace: ns.clone(),
        expected: expected_of(tree, kind),
    };
    let mut specs = vec![
        CheckSpec {
            check: "Kustomizations Ready",
            api_version: "kustomize.toolkit.fluxcd.io/v1",
            kind: "Kustomization",
            namespace: ns.clone(),
            expected: ks_expected,
        },
        ai("AI resources Accepted", "AIGatewayRoute"),
        ai("AI resources Accepted", "AIServiceBackend"),
        ai("AI resources Accepted", "BackendSecurityPolicy"),
    ];
    if !view.mcp.is_empty() {
        specs.push(ai("AI resources Accepted", "MCPRoute"));
    }
    specs.push(CheckSpec {
        check: "Gateway Programmed",
        api_version: "gateway.networking.k8s.io/v1",
        kind: "Gateway",
        namespace: ns.clone(),
        expected: expected_of(tree, "Gateway")
            .into_iter()
            .filter(|e| e.namespace == ns)
            .collect(),
    });
    specs.push(CheckSpec {
        check: "Pods Running",
        api_version: "v1",
        kind: "Pod",
        namespace: ns.clone(),
        expected: Vec::new(),
    });
    specs.push(CheckSpec {
        check: "BackendTLSPolicies present",
        api_version: "gateway.networking.k8s.io/v1",
        kind: "BackendTLSPolicy",
        namespace: ns.clone(),
        expected: expected_of(tree, "BackendTLSPolicy"),
    });
    // Envoy Gateway policies of the AI namespace (client keys, token budget, failover, buffer
    // size): each must have attached to its target. A policy on the HTTPRoute the controller
    // generates stays unattached if that route never appears.
    for kind in [
        "ClientTrafficPolicy",
        "BackendTrafficPolicy",
        "SecurityPolicy",
    ] {
        let expected: Vec<Expected> = expected_of(tree, kind)
            .into_iter()
            .filter(|e| e.namespace == ns)
            .collect();
        if !expected.is_empty() {
            specs.push(CheckSpec {
                check: "Policies Accepted",
                api_version: "gateway.envoyproxy.io/v1alpha1",
                kind,
                namespace: ns.clone(),
                expected,
            });
        }
    }
    specs
}

/// Every client key the rendered tree guards a route with must be known (in plaintext) from
/// e2e/cluster.yaml: the rendered Secret's key names (which SOPS leaves readable) are checked
/// against `ai_gateway_client_keys`.
fn check_clients(view: &GatewayView, config: &E2eConfig) -> Result<(), String> {
    let auths = view
        .client_auth
        .iter()
        .chain(view.mcp.iter().filter_map(|r| r.client_auth.as_ref()));
    for auth in auths {
        if auth.clients.is_empty() {
            return Err(format!(
                "{} reads client keys from Secret `{}`, which the rendered tree does not hold",
                auth.policy, auth.secret
            ));
        }
        let missing: Vec<&str> = auth
            .clients
            .iter()
            .filter(|c| config.client_key(c).is_none())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "e2e/cluster.yaml: the rendered Secret `{}` has client(s) {} that `ai_gateway_client_keys` does not list; the harness needs their keys",
                auth.secret,
                missing.join(", ")
            ));
        }
    }
    Ok(())
}

/// The first client of e2e/cluster.yaml that `auth` admits; `None` without client keys.
fn first_client(auth: Option<&ClientAuth>, config: &E2eConfig) -> Option<String> {
    let auth = auth?;
    config
        .ai_gateway_client_keys
        .iter()
        .find(|c| auth.clients.contains(&c.name))
        .map(|c| c.name.clone())
}

/// The traffic checks the rendered routes call for, in the order they run (failover stops a
/// mock, so it comes last).
pub fn traffic_specs(view: &GatewayView, config: &E2eConfig) -> Result<Vec<TrafficSpec>, String> {
    check_clients(view, config)?;
    let client = first_client(view.client_auth.as_ref(), config);
    let mut specs = Vec::new();
    for (model, targets) in &view.models {
        let first = targets
            .iter()
            .min_by_key(|t| t.priority)
            .ok_or_else(|| format!("model `{model}` has no backendRefs"))?;
        if let Some(provider) = view.provider_backend(&first.backend) {
            specs.push(TrafficSpec::Provider {
                model: model.clone(),
                backend: first.backend.clone(),
                wire: provider.wire,
                upstream_model: first.deployment.clone().unwrap_or_else(|| model.clone()),
                client: client.clone(),
            });
            continue;
        }
        specs.push(TrafficSpec::Route {
            model: model.clone(),
            backend: first.backend.clone(),
            deployment: first.deployment.clone().unwrap_or_else(|| model.clone()),
            client: client.clone(),
        });
    }
    // The client-key and budget checks speak chat completions to Azure (whose mocks' usage they
    // set): models whose first backend is an Azure one.
    let azure_models: Vec<&String> = view
        .models
        .iter()
        .filter(|(_, targets)| {
            targets
                .iter()
                .min_by_key(|t| t.priority)
                .is_some_and(|t| view.azure_backend(&t.backend).is_some())
        })
        .map(|(model, _)| model)
        .collect();
    specs.push(TrafficSpec::UnknownModel {
        model: "e2e-no-such-model".into(),
        client: client.clone(),
    });
    if let (Some(auth), Some(model)) = (&view.client_auth, azure_models.first()) {
        specs.push(TrafficSpec::ClientKeys {
            model: (*model).clone(),
            header: auth.header.clone(),
            mcp_path: view
                .mcp
                .iter()
                .find(|r| r.client_auth.is_some())
                .map(|r| r.path.clone()),
        });
    }
    if let Some(rule) = view
        .budget
        .iter()
        .filter(|r| traffic::usage_for_budget(r.limit, r.cost).is_some())
        .min_by_key(|r| r.limit)
    {
        // With a shared budget, alternate between two models: one budget must still bite.
        let models: Vec<String> = azure_models
            .iter()
            .take(if rule.shared { 2 } else { 1 })
            .map(|m| (*m).clone())
            .collect();
        if models.is_empty() {
            return Err(format!(
                "BackendTrafficPolicy `{}` limits tokens, but no AIGatewayRoute routes a model",
                rule.policy
            ));
        }
        let keyed_on_client = view.client_auth.as_ref().is_some_and(|auth| {
            auth.client_id_header
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(&rule.header))
        });
        let identity = if keyed_on_client {
            // Two clients besides the one of the other checks, whose budget they must not touch.
            let others: Vec<&str> = config
                .ai_gateway_client_keys
                .iter()
                .map(|c| c.name.as_str())
                .filter(|name| Some(*name) != client.as_deref())
                .filter(|name| {
                    view.client_auth
                        .as_ref()
                        .is_some_and(|a| a.clients.iter().any(|c| c == name))
                })
                .collect();
            let [spender, control, ..] = others[..] else {
                return Err(format!(
                    "e2e/cluster.yaml: the token budget is keyed on the client key's name ({}), so its check needs three `ai_gateway_client_keys` (one for the other checks, one to spend its budget, one as control); found {}",
                    rule.header,
                    config.ai_gateway_client_keys.len()
                ));
            };
            BudgetIdentity::ClientKey {
                client: spender.to_owned(),
                control: control.to_owned(),
            }
        } else {
            BudgetIdentity::Header {
                client: client.clone(),
            }
        };
        specs.push(TrafficSpec::Budget {
            header: rule.header.clone(),
            limit: rule.limit,
            cost: rule.cost,
            shared: rule.shared,
            models,
            identity,
        });
    }
    for route in &view.mcp {
        specs.push(TrafficSpec::Mcp {
            route: route.name.clone(),
            path: route.path.clone(),
            backends: route.backends.iter().map(|b| b.name.clone()).collect(),
            client: first_client(route.client_auth.as_ref(), config),
        });
    }
    for (model, targets) in view.failover_models() {
        let mut sorted = targets.to_vec();
        sorted.sort_by_key(|t| t.priority);
        if let Some(second) = sorted.iter().find(|t| t.backend != sorted[0].backend) {
            specs.push(TrafficSpec::Failover {
                model: model.to_owned(),
                stop: sorted[0].backend.clone(),
                expect: second.backend.clone(),
                client: client.clone(),
                first_try: view
                    .failover_policy(&sorted[0].route)
                    .is_some_and(|p| p.retries_connect_failures_on_next_priority()),
            });
        }
    }
    Ok(specs)
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Run { program, args, env } => {
                for (k, v) in env {
                    write!(f, "{k}={} ", shell_quote(v))?;
                }
                write!(f, "{program}")?;
                for arg in args {
                    write!(f, " {}", shell_quote(arg))?;
                }
                Ok(())
            }
            Action::LoadMockImage { binary } => write!(
                f,
                "write a one-layer image archive of {} as {MOCK_IMAGE}, then `docker load` it",
                binary.display()
            ),
            Action::PackArtifact => write!(
                f,
                "pack kubernetes/ of the rendered tree as a Flux artifact (tar+gzip)"
            ),
            Action::StartMock(spec) => match spec {
                MockSpec::Azure {
                    name,
                    hostname,
                    port,
                    deployments,
                    ..
                } => write!(
                    f,
                    "start mock `{name}`: Azure OpenAI for {hostname}:{port} (TLS, test CA), deployments {}, api-key from e2e/cluster.yaml",
                    deployments.join(", ")
                ),
                MockSpec::Mcp {
                    name,
                    hostname,
                    port,
                    path,
                    api_key,
                    api_key_header,
                } => write!(
                    f,
                    "start mock `{name}`: MCP server at https://{hostname}:{port}{path} (tools {}), {}",
                    MCP_TOOLS.join(", "),
                    match api_key {
                        Some(_) => format!(
                            "API key required in `{}`",
                            api_key_header.as_deref().unwrap_or("Authorization")
                        ),
                        None => "no API key".to_owned(),
                    }
                ),
                MockSpec::Provider {
                    name,
                    hostname,
                    port,
                    wire,
                    tls,
                    credential,
                    region,
                    models,
                    ..
                } => write!(
                    f,
                    "start mock `{name}`: {wire:?} for {hostname}:{port} ({}), models {}, {}",
                    if *tls { "TLS, test CA" } else { "plain HTTP" },
                    models.join(", "),
                    match (wire, credential) {
                        (crate::mock::Wire::Bedrock, _) => format!(
                            "SigV4 scoped to the access key id from e2e/cluster.yaml and region {}",
                            region.as_deref().unwrap_or("?")
                        ),
                        (_, Some(_)) => "key from e2e/cluster.yaml required".to_owned(),
                        (_, None) => "no credential, and no Authorization accepted".to_owned(),
                    }
                ),
                MockSpec::Oci {
                    name,
                    hostname,
                    port,
                } => {
                    write!(
                        f,
                        "start mock `{name}`: OCI registry at http://{hostname}:{port}/v2/{OCI_REPOSITORY} serving the artifact"
                    )
                }
            },
            Action::PatchCoreDns => write!(
                f,
                "add CoreDNS `hosts` entries: each mock hostname → its container IP on the kind network; restart coredns"
            ),
            Action::MetalLbPool => write!(
                f,
                "apply IPAddressPool + L2Advertisement: .255.200-.255.250 of the kind network's IPv4 subnet"
            ),
            Action::AgeSecret { key_file } => {
                write!(
                    f,
                    "create Secret flux-system/sops-age (age.agekey) from {} through the API",
                    key_file.display()
                )
            }
            Action::WriteValues { path, source, .. } => {
                write!(f, "write spec.values of {source} to {}", path.display())
            }
            Action::Apply { what, .. } => write!(f, "apply {what}"),
            Action::WaitKustomization {
                namespace,
                name,
                minutes,
            } => {
                write!(
                    f,
                    "wait ≤{minutes}m for Kustomization {namespace}/{name} Ready"
                )
            }
            Action::Check(spec) => {
                write!(
                    f,
                    "check [{}] {} in {}",
                    spec.check, spec.kind, spec.namespace
                )?;
                if spec.expected.is_empty() {
                    write!(f, " (all found)")
                } else {
                    let names: Vec<&str> = spec.expected.iter().map(|e| e.name.as_str()).collect();
                    write!(f, ": {}", names.join(", "))
                }
            }
            Action::Traffic(spec) => write!(f, "traffic: {spec}"),
            Action::Hardening(spec) => write!(f, "check {spec}"),
        }
    }
}

/// ` (client key `name`)` when the request carries a client key.
fn as_client(client: &Option<String>) -> String {
    client
        .as_deref()
        .map(|c| format!(" (client key `{c}`)"))
        .unwrap_or_default()
}

impl fmt::Display for TrafficSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrafficSpec::Route {
                model,
                backend,
                deployment,
                client,
            } => write!(
                f,
                "model `{model}`{} → 200 from {backend}'s mock, upstream path /openai/deployments/{deployment}/chat/completions with its api-key and no Authorization",
                as_client(client)
            ),
            TrafficSpec::Provider {
                model,
                backend,
                wire,
                upstream_model,
                client,
            } => {
                let (api, what) = match wire {
                    crate::mock::Wire::OpenAi => (
                        "/v1/chat/completions",
                        "OpenAI chat completions with its Bearer key (none for a keyless in-cluster server, and no client Authorization)",
                    ),
                    crate::mock::Wire::Anthropic => (
                        "/anthropic/v1/messages",
                        "/v1/messages with its key in x-api-key and no Authorization",
                    ),
                    crate::mock::Wire::Bedrock => (
                        "/v1/chat/completions",
                        "/model/<id>/converse signed with SigV4 for its key id, region and service bedrock",
                    ),
                };
                write!(
                    f,
                    "model `{model}`{} on {api} → 200 from {backend}'s mock: {what}, model id `{upstream_model}`",
                    as_client(client)
                )
            }
            TrafficSpec::UnknownModel { model, client } => write!(
                f,
                "model `{model}`{} → 404, no upstream reached",
                as_client(client)
            ),
            TrafficSpec::ClientKeys {
                model,
                header,
                mcp_path,
            } => {
                write!(
                    f,
                    "client keys: model `{model}` with no {header} and with an unknown key → 401, no upstream reached"
                )?;
                if let Some(path) = mcp_path {
                    write!(f, "; MCP {path} initialize with no key → 401")?;
                }
                Ok(())
            }
            TrafficSpec::Failover {
                model,
                stop,
                expect,
                client,
                first_try,
            } => write!(
                f,
                "stop {stop}'s mock, model `{model}`{} → 200 from {expect}'s mock{}",
                as_client(client),
                if *first_try {
                    " on the first request (the failover policy retries a connect failure on the next priority)"
                } else {
                    " (within 10 tries: no failover policy retries it)"
                }
            ),
            TrafficSpec::Budget {
                header,
                limit,
                cost,
                shared,
                models,
                identity,
            } => {
                let per_request = traffic::usage_for_budget(*limit, *cost)
                    .and_then(|u| traffic::cost_of(*cost, u))
                    .unwrap_or(0);
                let refused = traffic::first_refused(&[traffic::Charge {
                    limit: *limit,
                    per_request,
                }])
                .unwrap_or(0);
                let models = models
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(" and ");
                write!(
                    f,
                    "budget {limit} {cost:?} per {header}{}: mock reports {per_request} per answer; ",
                    if *shared {
                        " (shared by every route)"
                    } else {
                        ""
                    }
                )?;
                let (spender, control) = match identity {
                    BudgetIdentity::Header { client } => (
                        format!("one {header}{}", as_client(client)),
                        format!("another {header}"),
                    ),
                    BudgetIdentity::ClientKey { client, control } => (
                        format!(
                            "client key `{client}` (sending a different {header} each time, which the gateway replaces)"
                        ),
                        format!("client key `{control}`"),
                    ),
                };
                write!(
                    f,
                    "{spender}, model {models} → 200 × {} then 429 on request {refused}; {control} → 200",
                    refused.saturating_sub(1)
                )
            }
            TrafficSpec::Mcp {
                route,
                path,
                backends,
                client,
            } => write!(
                f,
                "MCP {path} (MCPRoute {route}){}: initialize, tools/list = `<backend>__<tool>` for backends {} filtered by toolSelector, tools/call one",
                as_client(client),
                backends.join(", ")
            ),
        }
    }
}

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c))
    {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "{}. {}", i + 1, step.title)?;
            for action in &step.actions {
                writeln!(f, "   - {action}")?;
            }
        }
        writeln!(
            f,
            "{}. Clean up (skipped with --keep)",
            self.steps.len() + 1
        )?;
        writeln!(f, "   - stop and remove the mock containers")?;
        writeln!(f, "   - kind delete cluster --name {CLUSTER}")
    }
}
