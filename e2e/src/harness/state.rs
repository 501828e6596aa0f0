//! The state of a run and its step loop: what each action does, the lookups the checks share,
//! and the clean-up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use testcontainers::{ContainerAsync, GenericImage};

use crate::checks::{self, Outcome};
use crate::http::Endpoint;
use crate::image;
use crate::plan::{self, Action, E2eConfig, Layout, MockSpec, Plan};
use crate::tls::TestCa;
use crate::traffic;

use super::network::metallb_pool;
use super::process::{command_output, kubectl_apply, run_command, strings};

pub(super) struct RunningContainer {
    pub(super) container: Option<ContainerAsync<GenericImage>>,
    pub(super) ip: String,
    pub(super) spec: MockSpec,
}

pub(super) struct State {
    pub(super) layout: Layout,
    pub(super) config: E2eConfig,
    pub(super) plan: Plan,
    pub(super) ca: TestCa,
    pub(super) mocks: BTreeMap<String, RunningContainer>,
    /// Mocks a failover check has stopped (a later one may stop the same first backend).
    pub(super) stopped: BTreeSet<String>,
    pub(super) cluster_created: bool,
    pub(super) outcomes: Vec<Outcome>,
}

impl State {
    pub(super) fn new(layout: Layout, config: E2eConfig, plan: Plan) -> anyhow::Result<State> {
        Ok(State {
            layout,
            config,
            plan,
            ca: TestCa::generate()?,
            mocks: BTreeMap::new(),
            stopped: BTreeSet::new(),
            cluster_created: false,
            outcomes: Vec::new(),
        })
    }

    /// Run every step; returns the number of failed checks. A setup error aborts.
    pub(super) async fn execute(&mut self, plan: &Plan) -> anyhow::Result<usize> {
        let client_cell: std::cell::OnceCell<kube::Client> = std::cell::OnceCell::new();
        for (i, step) in plan.steps.iter().enumerate() {
            println!("==> {}. {}", i + 1, step.title);
            for action in &step.actions {
                println!("  -> {action}");
                if matches!(
                    action,
                    Action::Check(_) | Action::WaitKustomization { .. } | Action::Hardening(_)
                ) && client_cell.get().is_none()
                {
                    let _ = client_cell.set(crate::live::client().await?);
                }
                match action {
                    Action::Check(spec) => {
                        let client = client_cell.get().context("no kube client")?;
                        let outcomes =
                            crate::live::run_checks(client, std::slice::from_ref(spec)).await;
                        for outcome in &outcomes {
                            println!("     {outcome}");
                        }
                        self.outcomes.extend(outcomes);
                    }
                    Action::WaitKustomization {
                        namespace,
                        name,
                        minutes,
                    } => {
                        let client = client_cell.get().context("no kube client")?;
                        let detail = crate::live::wait_kustomization(
                            client,
                            namespace,
                            name,
                            Duration::from_secs(minutes * 60),
                        )
                        .await
                        .map_err(anyhow::Error::msg)?;
                        println!("     {detail}");
                    }
                    Action::Traffic(spec) => {
                        let verdict = self.traffic(spec).await;
                        let outcome = Outcome {
                            check: "Traffic",
                            subject: action
                                .to_string()
                                .trim_start_matches("traffic: ")
                                .to_owned(),
                            ok: verdict.is_ok(),
                            detail: match verdict {
                                Ok(detail) | Err(detail) => detail,
                            },
                        };
                        println!("     {outcome}");
                        self.outcomes.push(outcome);
                    }
                    Action::Hardening(spec) => {
                        let client = client_cell.get().context("no kube client")?;
                        let verdict = self
                            .hardening(spec, client)
                            .await
                            .unwrap_or_else(|err| Err(format!("{err:#}")));
                        let outcome = Outcome {
                            check: "Closed by default",
                            subject: action.to_string().trim_start_matches("check ").to_owned(),
                            ok: verdict.is_ok(),
                            detail: match verdict {
                                Ok(detail) | Err(detail) => detail,
                            },
                        };
                        println!("     {outcome}");
                        self.outcomes.push(outcome);
                    }
                    other => self.setup(other).await?,
                }
            }
        }
        println!("{}", checks::report(&self.outcomes));
        Ok(self.outcomes.iter().filter(|o| !o.ok).count())
    }

    async fn setup(&mut self, action: &Action) -> anyhow::Result<()> {
        match action {
            Action::Run { program, args, env } => {
                if program == "kind" && args.first().map(String::as_str) == Some("create") {
                    self.cluster_created = true;
                }
                run_command(program, args, env, None).await
            }
            Action::LoadMockImage { binary } => {
                let bytes = std::fs::read(binary)
                    .with_context(|| format!("cannot read {}", binary.display()))?;
                let archive = image::mock_image_archive(&bytes, plan::MOCK_IMAGE)
                    .map_err(anyhow::Error::msg)?;
                let path = self.layout.scratch.join("mock-image.tar");
                std::fs::write(&path, archive)?;
                run_command(
                    "docker",
                    &["load".into(), "--input".into(), path.display().to_string()],
                    &[],
                    None,
                )
                .await
            }
            Action::PackArtifact => {
                let artifact =
                    image::flux_artifact(&self.layout.rendered).map_err(anyhow::Error::msg)?;
                std::fs::write(self.layout.scratch.join("artifact.tar.gz"), artifact)?;
                Ok(())
            }
            Action::StartMock(spec) => self.start_mock(spec).await,
            Action::PatchCoreDns => self.patch_coredns().await,
            Action::MetalLbPool => metallb_pool().await,
            Action::AgeSecret { key_file } => {
                let args: Vec<String> = [
                    "-n",
                    "flux-system",
                    "create",
                    "secret",
                    "generic",
                    "sops-age",
                ]
                .iter()
                .map(|s| (*s).to_owned())
                .chain([format!("--from-file=age.agekey={}", key_file.display())])
                .collect();
                run_command("kubectl", &args, &[], None).await
            }
            Action::WriteValues { path, values, .. } => {
                std::fs::write(path, serde_json::to_vec_pretty(values)?)?;
                Ok(())
            }
            Action::Apply { object, .. } => {
                let mut object = object.clone();
                if object["kind"] == "ConfigMap"
                    && object["metadata"]["name"] == plan::TEST_CA_CONFIGMAP
                {
                    object["data"]["ca.crt"] = Value::String(self.ca.cert_pem().to_owned());
                }
                kubectl_apply(&object).await
            }
            Action::WaitKustomization { .. }
            | Action::Check(_)
            | Action::Traffic(_)
            | Action::Hardening(_) => Ok(()),
        }
    }

    pub(super) fn mock_for_backend(&self, backend: &str) -> Option<&RunningContainer> {
        if self.plan.view.provider_backend(backend).is_some() {
            return self
                .mocks
                .values()
                .find(|m| matches!(&m.spec, MockSpec::Provider { name, .. } if name == backend));
        }
        let host = &self.plan.view.azure_backend(backend)?.host.hostname;
        self.mocks
            .values()
            .find(|m| matches!(&m.spec, MockSpec::Azure { hostname, .. } if hostname == host))
    }

    pub(super) fn admin(&self, mock: &RunningContainer) -> anyhow::Result<Endpoint> {
        Ok(Endpoint::parse(
            &format!("http://{}:{}", mock.ip, plan::ADMIN_PORT),
            None,
        )?)
    }

    /// The AI gateway's plain-HTTP listener on its Envoy Service's LoadBalancer address: the
    /// Service the rendered EnvoyProxy pins (`envoyService.name`), else the one Envoy Gateway
    /// labels as the Gateway's.
    pub(super) async fn gateway_endpoint(&self, path: &str) -> anyhow::Result<Endpoint> {
        let (ns, name) = &self.plan.view.gateway;
        let service: Value = match self
            .plan
            .view
            .service
            .as_ref()
            .and_then(|s| s.name.as_ref().map(|n| (s.namespace.as_str(), n.as_str())))
        {
            Some((svc_ns, svc_name)) => serde_json::from_str(
                &command_output(
                    "kubectl",
                    &["-n", svc_ns, "get", "service", svc_name, "-o", "json"],
                )
                .await?,
            )?,
            None => {
                let selector = format!(
                    "gateway.envoyproxy.io/owning-gateway-name={name},gateway.envoyproxy.io/owning-gateway-namespace={ns}"
                );
                let list: Value = serde_json::from_str(
                    &command_output(
                        "kubectl",
                        &[
                            "get",
                            "service",
                            "--all-namespaces",
                            "-l",
                            &selector,
                            "-o",
                            "json",
                        ],
                    )
                    .await?,
                )?;
                list.pointer("/items/0")
                    .cloned()
                    .context("no Envoy Service carries the AI Gateway's owning-gateway labels")?
            }
        };
        let ip = service
            .pointer("/status/loadBalancer/ingress/0/ip")
            .and_then(Value::as_str)
            .context("the AI Gateway's Envoy Service has no LoadBalancer address")?;
        let listener = self
            .plan
            .view
            .listener
            .as_ref()
            .context("the AI Gateway has no plain HTTP listener the harness can reach without the production certificate")?;
        let port = listener.port;
        let host = listener
            .hostname
            .as_deref()
            .unwrap_or(ip)
            .replace("${SECRET_DOMAIN}", &self.config.cloudflare_domain);
        Ok(
            Endpoint::parse(&format!("http://{host}:{port}{path}"), None)?
                .via(format!("{ip}:{port}").parse()?),
        )
    }

    /// Issue 13's checks (crate::hardening): gather what they need, act through
    /// crate::hardening_live.
    async fn hardening(
        &self,
        spec: &crate::hardening::HardeningSpec,
        client: &kube::Client,
    ) -> anyhow::Result<traffic::Verdict> {
        use crate::hardening::HardeningSpec;
        use crate::hardening_live as live;
        match spec {
            HardeningSpec::ForgedMcpHeaders { route, backends } => {
                let admins: Vec<Endpoint> = self
                    .mocks
                    .values()
                    .filter(|m| matches!(m.spec, MockSpec::Mcp { .. }))
                    .map(|m| self.admin(m))
                    .collect::<anyhow::Result<_>>()?;
                let (ns, name) = &self.plan.view.gateway;
                let gateway = self.gateway_endpoint("").await?;
                live::forged_mcp_headers(ns, name, &gateway, &admins, route, backends).await
            }
            HardeningSpec::SessionSeed { namespace } => live::session_seed(client, namespace).await,
            HardeningSpec::NoRetry { route, envoys } => live::no_retry(route, envoys).await,
            HardeningSpec::RedisIsolated { host, port } => live::redis_isolated(host, *port).await,
            HardeningSpec::MetricsAnswer { targets } => live::metrics(targets).await,
        }
    }

    pub(super) async fn cleanup(&mut self, keep: bool) {
        if keep {
            println!(
                "e2e: --keep: leaving kind cluster `{}` and the mock containers running",
                plan::CLUSTER
            );
            println!(
                "     kubectl config use-context kind-{}; remove with: kind delete cluster --name {}",
                plan::CLUSTER,
                plan::CLUSTER
            );
            for mock in self.mocks.values_mut() {
                // Dropping a testcontainers handle removes the container; forgetting it keeps it.
                std::mem::forget(mock.container.take());
            }
            return;
        }
        for mock in self.mocks.values_mut() {
            if let Some(container) = mock.container.take() {
                let _ = container.rm().await;
            }
        }
        if self.cluster_created {
            let _ = run_command(
                "kind",
                &strings(&["delete", "cluster", "--name", plan::CLUSTER]),
                &[],
                None,
            )
            .await;
        }
    }
}
