//! [`build`]: the steps of a run, phase by phase (mock image, cluster, mocks, MetalLB, CRDs,
//! Envoy Gateway, Flux, the rendered tree, waits, checks, traffic, hardening).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::gateway::GatewayView;
use crate::rendered::{FluxKustomization, HelmChart, Tree};

use super::{
    Action, CERT_MANAGER_VERSION, CLUSTER, E2eConfig, FLUX_VERSION, KIND_NODE_IMAGE, Layout,
    METALLB_VERSION, MockSpec, OCI_HOST, OCI_PORT, OCI_REPOSITORY, PROMETHEUS_OPERATOR_VERSION,
    Plan, Step, TEST_CA_CONFIGMAP, check_specs, traffic_specs,
};

fn run(program: &str, args: &[&str]) -> Action {
    Action::Run {
        program: program.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: Vec::new(),
    }
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
