//! `cargo xtask ai-gateway status [--rendered DIR]`: the plan's optional status task.
//!
//! Runs the same verification checks as `cargo xtask e2e` (Kustomizations Ready, AI resources
//! Accepted, Gateway Programmed, pods Running, BackendTLSPolicies present) against the current
//! kubeconfig, through the `e2e` crate's binary (xtask links no Kubernetes client).

use std::process::ExitCode;

const HELP: &str = "\
cargo xtask ai-gateway status [--rendered DIR]

Check the AI Gateway on the cluster of the current kubeconfig (KUBECONFIG or ~/.kube/config).
Objects the rendered tree (default: this repository) promises must exist and be healthy.
Exit code 0 all healthy, 1 something is not, 2 could not run.
";

pub fn run(args: &mut lexopt::Parser) -> anyhow::Result<ExitCode> {
    let mut forwarded = Vec::new();
    let mut subcommand = None;
    while let Some(arg) = args.next()? {
        match arg {
            lexopt::Arg::Value(value) if subcommand.is_none() => {
                subcommand = Some(value.to_string_lossy().into_owned())
            }
            lexopt::Arg::Long("rendered") => {
                forwarded.push("--rendered".to_owned());
                // The e2e binary runs from the repository root: make the path independent of the cwd.
                let dir = std::path::absolute(args.value()?)?;
                forwarded.push(dir.display().to_string());
            }
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            other => anyhow::bail!(
                "ai-gateway: unexpected argument {}",
                crate::util::describe(&other)
            ),
        }
    }
    match subcommand.as_deref() {
        Some("status") => {
            // Before the e2e binary is built (minutes, the first time): is there a cluster?
            if let Err(crate::kubeconfig::Unreachable(why)) = crate::kubeconfig::check() {
                eprintln!("ai-gateway status: {why}\n  nothing was checked");
                return Ok(ExitCode::from(2));
            }
            crate::e2e::run_e2e_binary("status", &forwarded)
        }
        Some(other) => {
            anyhow::bail!("ai-gateway: unknown subcommand `{other}` (expected `status`)")
        }
        None => {
            print!("{HELP}");
            Ok(ExitCode::from(2))
        }
    }
}

/// Where the rendered AI Gateway lives in the tree.
const AI_DIR: &str = "kubernetes/apps/ai-gateway/";

/// When a configure run removes the whole AI Gateway (every rendered file under
/// `kubernetes/apps/ai-gateway/` goes, none stays), what Flux leaves on the cluster and how to
/// remove it, in order. `None` for any other run.
pub fn removal_note(plan: &render::Plan) -> Option<String> {
    let mut removed = 0;
    for f in plan.files().iter().filter(|f| f.path.starts_with(AI_DIR)) {
        match f.action {
            render::Action::Remove => removed += 1,
            render::Action::Keep => {}
            _ => return None, // Still rendered: not a removal.
        }
    }
    (removed > 0).then(|| REMOVAL_NOTE.to_owned())
}

/// Kept in step with docs/ai-gateway.md, "Disabling the AI Gateway".
const REMOVAL_NOTE: &str = "\
note: the AI Gateway was removed from the tree. After you commit and push, Flux deletes its routes,
  backends, MCP objects, gateway and Redis while the controller keeps running: its Kustomization is
  orphaned on purpose, so that the controller can remove its finalizers first. Then, by hand:
  1. wait until `kubectl get aigatewayroutes,aiservicebackends,backendsecuritypolicies,mcproutes -A`
     lists nothing
  2. `kubectl delete namespace envoy-ai-gateway-system` (Flux never prunes it): this removes the
     orphaned controller (its HelmRelease is uninstalled), the controller's Secret
     `ai-gateway-envoy-ai-gateway-system`, which holds every Azure key, and the MCP session seed
  3. the four AI Gateway CRDs, kept on purpose: `kubectl delete crd
     aigatewayroutes.aigateway.envoyproxy.io aiservicebackends.aigateway.envoyproxy.io
     backendsecuritypolicies.aigateway.envoyproxy.io mcproutes.aigateway.envoyproxy.io`
  An object that hangs in Terminating because the controller went first needs its finalizer removed:
  `kubectl -n envoy-ai-gateway-system patch <kind> <name> --type merge -p '{\"metadata\":{\"finalizers\":null}}'`
";
