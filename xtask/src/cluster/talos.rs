//! `cargo xtask talos <action>`: the node tasks of cluster-template's `.taskfiles/talos`.

use std::process::ExitCode;

use anyhow::Result;

use super::talconfig::Talos;
use super::{Cmd, Env, Flags, Job, Step};

pub const HELP: &str = "\
cargo xtask talos <action> [options]

Talos node tasks on the rendered talos/ directory, with talhelper and talosctl (versions pinned
in tools.toml). Every action prints what it runs; --plan prints the commands and runs nothing.

Actions:
  generate-config          seal new Talos secrets into talos/talsecret.sops.yaml (once), then
                           `talhelper genconfig` (talos/clusterconfig/, git-ignored)
  apply-node NODE          apply the node's machine configuration (NODE: hostname or address)
      --insecure           the node is in maintenance mode (first install, after a reset)
      --mode MODE          auto (default), no-reboot, reboot, staged or try
  bootstrap                bootstrap etcd on the first control-plane node (retried until it answers)
  kubeconfig               fetch the admin kubeconfig into ./kubeconfig (retried)
  upgrade-node NODE        upgrade Talos on one node to talos/talenv.yaml's talosVersion (asks first)
  upgrade-k8s              upgrade Kubernetes to talos/talenv.yaml's kubernetesVersion (asks first)
  reset                    wipe STATE and EPHEMERAL of every node and reboot it into maintenance
                           mode (asks first)
      --wipe-all           wipe every system partition instead

Options:
  --plan       print the exact commands (environment variables by name only) and run nothing
  --yes        do not ask before upgrade-node, upgrade-k8s and reset
  --root DIR   the repository (default: this repository's root)

Exit code: 0 done, 1 a command failed or you said no, 2 could not run (a tool or file missing).
";

const TALOSCONFIG: &str = "--talosconfig=./clusterconfig/talosconfig";
const TALOSCONFIG_FILE: &str = "talos/clusterconfig/talosconfig";
const TALSECRET: &str = "talos/talsecret.sops.yaml";
const MODES: &[&str] = &["auto", "no-reboot", "reboot", "staged", "try"];

pub fn run(args: &mut lexopt::Parser) -> Result<ExitCode> {
    use lexopt::Arg::{Long, Short, Value};
    let mut flags = Flags::default();
    let mut action: Option<String> = None;
    let mut node: Option<String> = None;
    let (mut insecure, mut wipe_all, mut mode) = (false, false, "auto".to_owned());
    while let Some(arg) = args.next()? {
        if flags.take(&arg) {
            continue;
        }
        match arg {
            Long("root") => flags.root = Some(args.value()?.into()),
            Long("help") | Short('h') => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            Long("insecure") => insecure = true,
            Long("wipe-all") => wipe_all = true,
            Long("mode") => mode = args.value()?.to_string_lossy().into_owned(),
            Value(v) if action.is_none() => action = Some(v.to_string_lossy().into_owned()),
            Value(v) if node.is_none() => node = Some(v.to_string_lossy().into_owned()),
            other => return Err(crate::util::unexpected(&other, HELP)),
        }
    }
    let Some(action) = action else {
        eprint!("{HELP}");
        return Ok(ExitCode::from(2));
    };
    let name = format!("talos {action}");
    let takes_node = matches!(action.as_str(), "apply-node" | "upgrade-node");
    if takes_node != node.is_some() {
        anyhow::bail!(
            "{name}: {}\n\n{HELP}",
            if takes_node {
                "name the node (its hostname or address)"
            } else {
                "takes no NODE"
            }
        );
    }
    if (insecure || mode != "auto") && action != "apply-node" {
        anyhow::bail!("{name}: --insecure and --mode belong to apply-node");
    }
    if wipe_all && action != "reset" {
        anyhow::bail!("{name}: --wipe-all belongs to reset");
    }
    if !MODES.contains(&mode.as_str()) {
        anyhow::bail!(
            "{name}: --mode {mode} is not one of {}\n  help: `interactive` needs a terminal talosctl owns; run talosctl yourself for it",
            MODES.join(", ")
        );
    }
    let root = flags.root();
    let talos = match super::load_talos(&root, &name) {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let node = match node.as_deref().map(|key| talos.node(key)).transpose() {
        Ok(n) => n.cloned(),
        Err(e) => anyhow::bail!("{name}: {e}"),
    };
    let options = Options {
        insecure,
        mode,
        wipe_all,
    };
    let Some(job) = job(&action, &talos, node.as_ref(), &options, root) else {
        anyhow::bail!("talos: unknown action `{action}`\n\n{HELP}");
    };
    super::execute(&job, &flags)
}

pub struct Options {
    pub insecure: bool,
    pub mode: String,
    pub wipe_all: bool,
}

fn talosctl(sub: &str) -> Cmd {
    Cmd::new("talosctl", &[sub, TALOSCONFIG]).in_talos()
}

fn nodes(n: &super::talconfig::Node) -> String {
    format!("--nodes={}", n.address)
}

/// `talhelper gensecret` sealed into talos/talsecret.sops.yaml unless it exists, then genconfig.
pub fn generate_steps() -> Vec<Step> {
    vec![
        Step::Seal {
            cmd: Cmd::new("talhelper", &["gensecret"]).in_talos(),
            to: TALSECRET.to_owned(),
        },
        Step::Run(
            Cmd::new("talhelper", &["genconfig"])
                .in_talos()
                .with_env(Env::SopsAgeKeyFile),
        ),
    ]
}

pub fn apply_step(talos: &Talos, node: &super::talconfig::Node, options: &Options) -> Step {
    let mut cmd = talosctl("apply-config")
        .arg(nodes(node))
        .arg(format!("--file={}", talos.machine_config(node)))
        .arg(format!("--mode={}", options.mode));
    if options.insecure {
        cmd = cmd.arg("--insecure");
    }
    Step::Run(cmd)
}

pub fn bootstrap_step(talos: &Talos) -> Step {
    Step::Retry(talosctl("bootstrap").arg(nodes(talos.first_control_plane())))
}

pub fn kubeconfig_step(talos: &Talos) -> Step {
    // `..` from talos/: the repository root, where cluster-template keeps it too (git-ignored).
    Step::Retry(
        talosctl("kubeconfig")
            .arg(nodes(talos.first_control_plane()))
            .arg("..")
            .arg("--force"),
    )
}

/// The job for `action`, `None` for an unknown action.
pub fn job(
    action: &str,
    talos: &Talos,
    node: Option<&super::talconfig::Node>,
    options: &Options,
    root: std::path::PathBuf,
) -> Option<Job> {
    let needs_talosconfig = || {
        vec![(
            TALOSCONFIG_FILE.to_owned(),
            "run `cargo xtask talos generate-config` first".to_owned(),
        )]
    };
    let (steps, destructive, needs) = match (action, node) {
        ("generate-config", _) => (generate_steps(), None, {
            let mut needs = vec![(
                ".sops.yaml".to_owned(),
                "run `cargo xtask configure` first".to_owned(),
            )];
            needs.extend(super::bootstrap::age_key_need());
            needs
        }),
        ("apply-node", Some(n)) => (vec![apply_step(talos, n, options)], None, {
            let mut needs = needs_talosconfig();
            needs.push((
                format!("talos/{}", talos.machine_config(n).trim_start_matches("./")),
                "run `cargo xtask talos generate-config` first".to_owned(),
            ));
            needs
        }),
        ("bootstrap", _) => (vec![bootstrap_step(talos)], None, needs_talosconfig()),
        ("kubeconfig", _) => (vec![kubeconfig_step(talos)], None, needs_talosconfig()),
        ("upgrade-node", Some(n)) => (
            vec![Step::Run(
                talosctl("upgrade")
                    .arg(nodes(n))
                    .arg(format!("--image={}:{}", n.image, talos.talos_version))
                    .arg("--timeout=10m"),
            )],
            Some(format!(
                "this upgrades Talos on {} ({}) to {} and reboots it",
                n.hostname, n.address, talos.talos_version
            )),
            needs_talosconfig(),
        ),
        ("upgrade-k8s", _) => (
            vec![Step::Run(
                talosctl("upgrade-k8s")
                    .arg(nodes(talos.first_control_plane()))
                    .arg(format!("--to={}", talos.kubernetes_version)),
            )],
            Some(format!(
                "this upgrades Kubernetes on every node to {}",
                talos.kubernetes_version
            )),
            needs_talosconfig(),
        ),
        ("reset", _) => {
            let steps = talos
                .nodes
                .iter()
                .map(|n| {
                    let mut cmd = talosctl("reset").arg(nodes(n)).arg("--reboot");
                    if !options.wipe_all {
                        cmd = cmd
                            .arg("--system-labels-to-wipe=STATE")
                            .arg("--system-labels-to-wipe=EPHEMERAL");
                    }
                    Step::Run(cmd.arg("--graceful=false").arg("--wait=false"))
                })
                .collect();
            let names: Vec<&str> = talos.nodes.iter().map(|n| n.hostname.as_str()).collect();
            (
                steps,
                Some(format!(
                    "this DESTROYS the cluster: {} reset{} and reboot into maintenance mode",
                    names.join(", "),
                    if options.wipe_all {
                        " (every system partition wiped)"
                    } else {
                        " (STATE and EPHEMERAL wiped)"
                    }
                )),
                needs_talosconfig(),
            )
        }
        _ => return None,
    };
    Some(Job {
        name: format!("talos {action}"),
        root,
        steps,
        destructive,
        needs,
    })
}
