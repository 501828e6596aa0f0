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
        Some("status") => crate::e2e::run_e2e_binary("status", &forwarded),
        Some(other) => {
            anyhow::bail!("ai-gateway: unknown subcommand `{other}` (expected `status`)")
        }
        None => {
            print!("{HELP}");
            Ok(ExitCode::from(2))
        }
    }
}
