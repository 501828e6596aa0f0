//! `cargo xtask e2e`: execute the [`Plan`] on a kind cluster.
//!
//! This module only orchestrates (processes, containers, API calls) and prints progress; it
//! cannot run without a container engine, so it has no unit tests of its own. Everything it
//! decides is decided by tested code: the plan ([`crate::plan`]), the check verdicts
//! ([`crate::checks`], [`crate::traffic`]), the mocks and clients.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::checks::{self, Outcome};
use crate::client::mcp::McpClient;
use crate::client::openai::OpenAiClient;
use crate::http::Endpoint;
use crate::image;
use crate::mock::{
    self, AzureConfig, Listen, McpConfig, MockConfig, OciConfig, ProviderConfig, TlsFiles,
    ToolSpec, Usage, Wire,
};
use crate::plan::{self, Action, E2eConfig, Layout, MockSpec, Plan, TrafficSpec};
use crate::preflight;
use crate::providers::ProviderRoute;
use crate::rendered::Tree;
use crate::tls::TestCa;
use crate::traffic::{self, Route};

/// Usage the Azure mocks report outside the budget check.
const DEFAULT_USAGE: Usage = Usage {
    prompt_tokens: 10,
    completion_tokens: 5,
};
/// Path of the artifact inside the OCI mock container.
const ARTIFACT_IN_CONTAINER: &str = "/etc/mock/artifact.tar.gz";

pub struct Options {
    pub workspace: PathBuf,
    pub rendered: Option<PathBuf>,
    pub plan_only: bool,
    pub keep: bool,
}

/// Exit codes: 0 every check passed, 1 a check or a setup step failed, 2 could not start.
pub async fn main(options: Options) -> u8 {
    match run(options).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("e2e: error: {err:#}");
            2
        }
    }
}

/// Fake Cloudflare tunnel credentials: the tunnel's template needs the file, the tunnel itself
/// never runs in the e2e cluster (its app is suspended).
const FAKE_TUNNEL: &str = "{\"AccountTag\":\"e2e-fake-account\",\"TunnelSecret\":\"ZTJlLWZha2UtdHVubmVsLXNlY3JldA==\",\"TunnelID\":\"00000000-0000-4000-8000-00000000e2e0\"}\n";

/// Make `dir` a throwaway repository for the e2e render: copies of `e2e/cluster.yaml` and
/// `e2e/nodes.yaml`, and fake tunnel credentials (mode 0600). The keys come from
/// `cargo xtask init` (see [`render_commands`]): fresh for every run, never the user's.
pub fn prepare_render_dir(workspace: &Path, dir: &Path) -> anyhow::Result<()> {
    create_private_dir(dir)?;
    for name in ["cluster.yaml", "nodes.yaml"] {
        let from = workspace.join("e2e").join(name);
        std::fs::copy(&from, dir.join(name))
            .with_context(|| format!("cannot copy {} to {}", from.display(), dir.display()))?;
    }
    write_private(&dir.join("cloudflare-tunnel.json"), FAKE_TUNNEL.as_bytes())
}

/// The commands (run from the workspace root) that render the e2e configuration in `dir`, as a
/// user would: `cargo xtask init` creates a new age key, push token (and deploy key) there,
/// keeping the copied configs, then `cargo xtask configure` reads the keys from the directory
/// of its `--config` and writes the tree, encrypted with that age key, into `--out`. The
/// rendered tree and its `age.key` end up side by side in `dir`, the layout `--rendered DIR`
/// takes; Flux gets the same age key to decrypt.
pub fn render_commands(dir: &Path) -> Vec<Vec<String>> {
    let path = |name: &str| dir.join(name).display().to_string();
    let xtask = |args: &[String]| {
        ["cargo", "xtask"]
            .iter()
            .map(|s| (*s).to_owned())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
    };
    let dir = dir.display().to_string();
    vec![
        xtask(&["init".into(), "--dir".into(), dir.clone()]),
        xtask(&[
            "configure".into(),
            "--config".into(),
            path("cluster.yaml"),
            "--nodes".into(),
            path("nodes.yaml"),
            "--out".into(),
            dir,
        ]),
    ]
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Render e2e/cluster.yaml into `dir` (see [`render_commands`]).
fn render(workspace: &Path, dir: &Path) -> anyhow::Result<()> {
    prepare_render_dir(workspace, dir)?;
    for command in render_commands(dir) {
        println!("==> render the e2e config: {}", command.join(" "));
        let status = std::process::Command::new(&command[0])
            .args(&command[1..])
            .current_dir(workspace)
            .status()
            .with_context(|| format!("cannot run {}", command[0]))?;
        if !status.success() {
            bail!(
                "`{}` failed ({status}, see above); pass --rendered DIR to use a tree rendered elsewhere",
                command.join(" ")
            );
        }
    }
    Ok(())
}

async fn run(options: Options) -> anyhow::Result<u8> {
    let scratch = std::env::temp_dir().join(format!("ai-gateway-e2e-{}", std::process::id()));
    create_private_dir(&scratch)?;
    let result = run_in(&options, &scratch).await;
    // The throwaway keys and the rendered tree go with the scratch directory.
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn run_in(options: &Options, scratch: &Path) -> anyhow::Result<u8> {
    // Tools first: without them nothing is rendered, built or created.
    if !options.plan_only {
        let path = std::env::var_os("PATH").unwrap_or_default();
        if let Some(report) = preflight::problems(&preflight::check(preflight::TOOLS, &path)) {
            eprint!("{report}");
            eprintln!(
                "e2e: not run. This is not a pass: the end-to-end checks need a container engine (see docs/e2e.md)."
            );
            return Ok(2);
        }
    }
    let rendered = match &options.rendered {
        Some(dir) => dir.clone(),
        None => {
            let dir = scratch.join("repo");
            render(&options.workspace, &dir)?;
            dir
        }
    };
    let tree = Tree::load(&rendered)?;
    let config =
        E2eConfig::load(&options.workspace.join("e2e/cluster.yaml")).map_err(anyhow::Error::msg)?;
    let layout = Layout {
        workspace: options.workspace.clone(),
        rendered: rendered.clone(),
        scratch: scratch.to_path_buf(),
        age_key: rendered.join("age.key"),
    };
    let plan = plan::build(&layout, &tree, &config).map_err(anyhow::Error::msg)?;
    if options.plan_only {
        print!("{plan}");
        return Ok(0);
    }

    if !layout.age_key.is_file() {
        bail!(
            "{}: the age key that encrypted the rendered secrets is needed for Flux to decrypt them",
            layout.age_key.display()
        );
    }

    let mut state = State::new(layout, config, plan.clone())?;
    let result = state.execute(&plan).await;
    let code = match result {
        Ok(0) => {
            println!("e2e: all checks passed");
            0
        }
        Ok(failed) => {
            println!("e2e: {failed} check(s) failed");
            1
        }
        Err(err) => {
            eprintln!("e2e: a step failed: {err:#}");
            1
        }
    };
    state.cleanup(options.keep).await;
    Ok(code)
}

struct RunningContainer {
    container: Option<ContainerAsync<GenericImage>>,
    ip: String,
    spec: MockSpec,
}

struct State {
    layout: Layout,
    config: E2eConfig,
    plan: Plan,
    ca: TestCa,
    mocks: BTreeMap<String, RunningContainer>,
    /// Mocks a failover check has stopped (a later one may stop the same first backend).
    stopped: BTreeSet<String>,
    cluster_created: bool,
    outcomes: Vec<Outcome>,
}

impl State {
    fn new(layout: Layout, config: E2eConfig, plan: Plan) -> anyhow::Result<State> {
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
    async fn execute(&mut self, plan: &Plan) -> anyhow::Result<usize> {
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

    async fn start_mock(&mut self, spec: &MockSpec) -> anyhow::Result<()> {
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

    async fn patch_coredns(&self) -> anyhow::Result<()> {
        let current = command_output(
            "kubectl",
            &[
                "-n",
                "kube-system",
                "get",
                "configmap",
                "coredns",
                "-o",
                "json",
            ],
        )
        .await?;
        let mut configmap: Value = serde_json::from_str(&current)?;
        let corefile = configmap["data"]["Corefile"]
            .as_str()
            .context("coredns ConfigMap has no Corefile")?
            .to_owned();
        let entries: Vec<String> = self
            .mocks
            .values()
            .map(|m| format!("{} {}", m.ip, m.spec.hostname()))
            .collect();
        let patched = add_hosts(&corefile, &entries).map_err(anyhow::Error::msg)?;
        configmap["data"]["Corefile"] = Value::String(patched);
        for key in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
        ] {
            if let Some(meta) = configmap["metadata"].as_object_mut() {
                meta.remove(key);
            }
        }
        kubectl_apply(&configmap).await?;
        run_command(
            "kubectl",
            &strings(&[
                "-n",
                "kube-system",
                "rollout",
                "restart",
                "deployment/coredns",
            ]),
            &[],
            None,
        )
        .await?;
        run_command(
            "kubectl",
            &strings(&[
                "-n",
                "kube-system",
                "rollout",
                "status",
                "deployment/coredns",
                "--timeout=120s",
            ]),
            &[],
            None,
        )
        .await
    }

    fn mock_for_backend(&self, backend: &str) -> Option<&RunningContainer> {
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

    fn admin(&self, mock: &RunningContainer) -> anyhow::Result<Endpoint> {
        Ok(Endpoint::parse(
            &format!("http://{}:{}", mock.ip, plan::ADMIN_PORT),
            None,
        )?)
    }

    /// The AI gateway's plain-HTTP listener on its Envoy Service's LoadBalancer address: the
    /// Service the rendered EnvoyProxy pins (`envoyService.name`), else the one Envoy Gateway
    /// labels as the Gateway's.
    async fn gateway_endpoint(&self, path: &str) -> anyhow::Result<Endpoint> {
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

    async fn traffic(&mut self, spec: &TrafficSpec) -> traffic::Verdict {
        self.traffic_inner(spec)
            .await
            .unwrap_or_else(|err| Err(format!("{err:#}")))
    }

    /// The plaintext key of a client named in the plan (from e2e/cluster.yaml).
    fn key_of(&self, client: &Option<String>) -> anyhow::Result<Option<String>> {
        client
            .as_deref()
            .map(|name| {
                self.config
                    .client_key(name)
                    .map(str::to_owned)
                    .with_context(|| format!("client `{name}` has no key in e2e/cluster.yaml"))
            })
            .transpose()
    }

    async fn traffic_inner(&mut self, spec: &TrafficSpec) -> anyhow::Result<traffic::Verdict> {
        let gateway = OpenAiClient::new(self.gateway_endpoint("").await?);
        match spec {
            TrafficSpec::Route {
                model,
                backend,
                deployment,
                client,
            } => {
                let openai = gateway.with_api_key(self.key_of(client)?.as_deref());
                let outcome = openai
                    .chat(model, Some(&format!("e2e-route-{model}")))
                    .await?;
                self.routed(
                    model,
                    deployment,
                    backend,
                    outcome.status,
                    outcome.upstream.as_deref(),
                )
                .await
            }
            TrafficSpec::Provider {
                model,
                backend,
                wire,
                upstream_model,
                client,
            } => {
                let openai = gateway.with_api_key(self.key_of(client)?.as_deref());
                let outcome = match wire {
                    Wire::Anthropic => {
                        openai
                            .messages(model, Some(&format!("e2e-route-{model}")))
                            .await?
                    }
                    Wire::OpenAi | Wire::Bedrock => {
                        openai
                            .chat(model, Some(&format!("e2e-route-{model}")))
                            .await?
                    }
                };
                self.routed(
                    model,
                    upstream_model,
                    backend,
                    outcome.status,
                    outcome.upstream.as_deref(),
                )
                .await
            }
            TrafficSpec::UnknownModel { model, client } => {
                let openai = gateway.with_api_key(self.key_of(client)?.as_deref());
                let outcome = openai.chat(model, Some("e2e-unknown")).await?;
                Ok(traffic::unknown_model_refused(
                    outcome.status,
                    outcome.upstream.as_deref(),
                ))
            }
            TrafficSpec::ClientKeys {
                model, mcp_path, ..
            } => {
                let mut attempts = Vec::new();
                for (what, key) in [
                    ("no key", None),
                    ("an unknown key", Some("e2e-not-a-client-key")),
                ] {
                    let outcome = gateway.with_api_key(key).chat(model, None).await?;
                    attempts.push((
                        format!("model `{model}` with {what}"),
                        outcome.status,
                        outcome.upstream,
                    ));
                }
                if let Some(path) = mcp_path {
                    let mut client = McpClient::new(self.gateway_endpoint(path).await?);
                    let status = match client.initialize().await {
                        Ok(_) => 200,
                        Err(crate::client::mcp::McpError::Status(status, _)) => status,
                        Err(other) => return Err(other.into()),
                    };
                    attempts.push((format!("MCP {path} with no key"), status, None));
                }
                Ok(traffic::refused_without_key(&attempts))
            }
            TrafficSpec::Budget {
                header,
                limit,
                cost,
                models,
                identity,
                ..
            } => {
                let usage = traffic::usage_for_budget(*limit, *cost)
                    .context("budget cannot be exercised")?;
                let per_request = traffic::cost_of(*cost, usage).unwrap_or(0);
                let refused = traffic::first_refused(&[traffic::Charge {
                    limit: *limit,
                    per_request,
                }])
                .unwrap_or(0);
                let (spender, control) = match identity {
                    plan::BudgetIdentity::Header { client } => {
                        let key = self.key_of(client)?;
                        let user = format!("e2e-budget-{}", std::process::id());
                        (
                            (gateway.with_api_key(key.as_deref()), Some(user.clone())),
                            (
                                gateway.with_api_key(key.as_deref()),
                                format!("{user}-control"),
                            ),
                        )
                    }
                    plan::BudgetIdentity::ClientKey { client, control } => (
                        (
                            gateway.with_api_key(self.key_of(&Some(client.clone()))?.as_deref()),
                            None,
                        ),
                        (
                            gateway.with_api_key(self.key_of(&Some(control.clone()))?.as_deref()),
                            format!("e2e-budget-control-{}", std::process::id()),
                        ),
                    ),
                };
                self.set_usage(usage).await?;
                let mut statuses = Vec::new();
                for i in 0..refused {
                    let model = &models[usize::try_from(i).unwrap_or(0) % models.len()];
                    // With client keys the gateway replaces the header: a different value on every
                    // request must not escape the budget.
                    let user = spender
                        .1
                        .clone()
                        .unwrap_or_else(|| format!("e2e-spoofed-{header}-{i}"));
                    statuses.push(spender.0.chat(model, Some(&user)).await?.status);
                }
                let control_status = control.0.chat(&models[0], Some(&control.1)).await?.status;
                self.set_usage(DEFAULT_USAGE).await?;
                Ok(traffic::budget_bites(refused, &statuses, control_status)
                    .map(|d| format!("{d} (statuses {statuses:?})")))
            }
            TrafficSpec::Mcp {
                path, client: who, ..
            } => {
                let route = self
                    .plan
                    .view
                    .mcp
                    .iter()
                    .find(|r| &r.path == path)
                    .context("MCPRoute not in view")?;
                let served = route
                    .backends
                    .iter()
                    .map(|b| {
                        (
                            b.name.clone(),
                            plan::MCP_TOOLS.iter().map(|t| (*t).to_owned()).collect(),
                        )
                    })
                    .collect();
                let expected = traffic::expected_tools(&route.backends, &served)
                    .map_err(anyhow::Error::msg)?;
                let mut client = McpClient::new(self.gateway_endpoint(path).await?);
                if let Some(key) = self.key_of(who)? {
                    client = client.with_header("authorization", &format!("Bearer {key}"));
                }
                client.initialize().await?;
                let listed = client.list_tools().await?;
                let verdict = traffic::tools_match(&expected, &listed);
                if verdict.is_ok()
                    && let Some(first) = expected.iter().next()
                {
                    let text = client.call_tool(first, json!({"e2e": true})).await?;
                    let tool = first.split_once("__").map_or(first.as_str(), |(_, t)| t);
                    if !text.contains(&format!("ran {tool}")) {
                        return Ok(Err(format!("tools/call {first} answered {text:?}")));
                    }
                }
                let _ = client.close().await;
                Ok(verdict)
            }
            TrafficSpec::Failover {
                model,
                stop,
                expect,
                client,
                first_try,
            } => {
                let openai = gateway.with_api_key(self.key_of(client)?.as_deref());
                let stopped = self
                    .mock_for_backend(stop)
                    .context("no mock for the first backend")?
                    .spec
                    .name()
                    .to_owned();
                if let Some(container) = self.mocks.get(&stopped).and_then(|m| m.container.as_ref())
                    && !self.stopped.contains(&stopped)
                {
                    container
                        .stop()
                        .await
                        .context("cannot stop the first backend's mock")?;
                    self.stopped.insert(stopped.clone());
                }
                // The Azure deployment behind the second backend (its modelNameOverride, if any).
                let deployment = self
                    .plan
                    .view
                    .models
                    .get(model)
                    .and_then(|targets| targets.iter().find(|t| &t.backend == expect))
                    .and_then(|t| t.deployment.clone())
                    .unwrap_or_else(|| model.clone());
                let mut attempts = Vec::new();
                for _ in 0..10 {
                    let outcome = openai.chat(model, Some("e2e-failover")).await?;
                    let verdict = self
                        .routed(
                            model,
                            &deployment,
                            expect,
                            outcome.status,
                            outcome.upstream.as_deref(),
                        )
                        .await?;
                    let done = verdict.is_ok();
                    attempts.push(verdict);
                    if done {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                Ok(traffic::failover(&attempts, *first_try)
                    .map(|d| format!("with {stopped} stopped: {d}")))
            }
        }
    }

    async fn routed(
        &self,
        model: &str,
        deployment: &str,
        backend: &str,
        status: u16,
        upstream: Option<&str>,
    ) -> anyhow::Result<traffic::Verdict> {
        let mock = self
            .mock_for_backend(backend)
            .with_context(|| format!("no mock for backend {backend}"))?;
        if let MockSpec::Provider {
            wire,
            credential,
            region,
            prefix,
            ..
        } = &mock.spec
        {
            let recorded = mock::fetch_recorded(&self.admin(mock)?).await?;
            let route = ProviderRoute {
                model,
                upstream_model: deployment,
                upstream: mock.spec.name(),
                wire: *wire,
                prefix,
                credential: credential.as_deref(),
                region: region.as_deref(),
            };
            return Ok(crate::providers::routed_to_provider(
                &route, status, upstream, &recorded,
            ));
        }
        let MockSpec::Azure { api_key, .. } = &mock.spec else {
            bail!("not an Azure mock")
        };
        let api_version = &self
            .plan
            .view
            .azure_backend(backend)
            .context("backend not in view")?
            .api_version;
        let recorded = mock::fetch_recorded(&self.admin(mock)?).await?;
        let route = Route {
            model,
            deployment,
            upstream: mock.spec.name(),
            api_key,
            api_version,
        };
        Ok(traffic::routed_to(&route, status, upstream, &recorded))
    }

    async fn set_usage(&self, usage: Usage) -> anyhow::Result<()> {
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

    async fn cleanup(&mut self, keep: bool) {
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

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

async fn run_command(
    program: &str,
    args: &[String],
    env: &[(String, String)],
    stdin: Option<Vec<u8>>,
) -> anyhow::Result<()> {
    let mut command = tokio::process::Command::new(program);
    command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use tokio::io::AsyncWriteExt;
        pipe.write_all(&data).await?;
        drop(pipe);
    }
    let status = child.wait().await?;
    if !status.success() {
        bail!("`{program} {}` exited with {status}", args.join(" "));
    }
    Ok(())
}

async fn command_output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn kubectl_apply(object: &Value) -> anyhow::Result<()> {
    let mut data = Vec::new();
    writeln!(data, "{object}")?;
    run_command(
        "kubectl",
        &strings(&["apply", "--server-side", "--force-conflicts", "-f", "-"]),
        &[],
        Some(data),
    )
    .await
}

async fn metallb_pool() -> anyhow::Result<()> {
    let subnets = command_output(
        "docker",
        &[
            "network",
            "inspect",
            "kind",
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
        ],
    )
    .await?;
    let range = metallb_range(&subnets).map_err(anyhow::Error::msg)?;
    kubectl_apply(&json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "e2e", "namespace": "metallb-system"},
        "spec": {"addresses": [range]}
    }))
    .await?;
    kubectl_apply(&json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "e2e", "namespace": "metallb-system"},
        "spec": {"ipAddressPools": ["e2e"]}
    }))
    .await
}

/// `.255.200-.255.250` of the first IPv4 /16 (or larger) subnet of the kind network
/// (upstream's harness carves `.200–.250` the same way).
pub fn metallb_range(subnets: &str) -> Result<String, String> {
    for subnet in subnets.split_whitespace() {
        let Some((addr, prefix)) = subnet.split_once('/') else {
            continue;
        };
        let Ok(addr) = addr.parse::<std::net::Ipv4Addr>() else {
            continue;
        };
        let prefix: u8 = prefix.parse().map_err(|_| format!("bad subnet {subnet}"))?;
        let [a, b, c, _] = addr.octets();
        return match prefix {
            0..=16 => Ok(format!("{a}.{b}.255.200-{a}.{b}.255.250")),
            17..=24 => Ok(format!("{a}.{b}.{c}.200-{a}.{b}.{c}.250")),
            _ => Err(format!(
                "kind network {subnet} is too small for a LoadBalancer pool"
            )),
        };
    }
    Err(format!(
        "no IPv4 subnet on the kind network (got `{subnets}`)"
    ))
}

/// Add a `hosts` block (with `fallthrough`) to the main server block of a Corefile.
pub fn add_hosts(corefile: &str, entries: &[String]) -> Result<String, String> {
    let marker = ".:53 {";
    let at = corefile
        .find(marker)
        .ok_or("Corefile has no `.:53 {` server block")?;
    let insert_at = at + marker.len();
    let mut block = String::from("\n    hosts {\n");
    for entry in entries {
        block.push_str(&format!("        {entry}\n"));
    }
    block.push_str("        fallthrough\n    }");
    Ok(format!(
        "{}{block}{}",
        &corefile[..insert_at],
        &corefile[insert_at..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_from_kind_network() {
        assert_eq!(
            metallb_range("172.18.0.0/16 fc00:f853:ccd:e793::/64").unwrap(),
            "172.18.255.200-172.18.255.250"
        );
        assert_eq!(
            metallb_range("fc00::/64 10.89.0.0/24").unwrap(),
            "10.89.0.200-10.89.0.250"
        );
        assert!(metallb_range("fc00::/64").is_err());
        assert!(metallb_range("10.0.0.0/28").is_err());
    }

    #[test]
    fn corefile_hosts_block() {
        // The shape of kind's default Corefile.
        let corefile = ".:53 {\n    errors\n    health {\n       lameduck 5s\n    }\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n    }\n    forward . /etc/resolv.conf\n}\n";
        let patched = add_hosts(
            corefile,
            &["172.18.0.5 e2e-primary.openai.azure.com".into()],
        )
        .unwrap();
        assert!(patched.starts_with(".:53 {\n    hosts {\n        172.18.0.5 e2e-primary.openai.azure.com\n        fallthrough\n    }\n    errors\n"), "{patched}");
        assert!(patched.ends_with("forward . /etc/resolv.conf\n}\n"));
        assert!(add_hosts("example.org {\n}\n", &[]).is_err());
    }
}
