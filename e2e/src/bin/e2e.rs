//! `e2e run [--plan] [--keep] [--rendered DIR]` and `e2e status [--rendered DIR]`.
//! Started by `cargo xtask e2e` and `cargo xtask ai-gateway status`, which pass the exit code on:
//! 0 all checks passed, 1 a check failed, 2 could not run.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: e2e run [--plan] [--keep] [--rendered DIR]
       e2e status [--rendered DIR]

run       build a kind cluster, install what `configure` rendered for e2e/cluster.yaml,
          run the verification and traffic checks, then delete everything
  --plan      print every step from the rendered files and stop
  --keep      leave the cluster and the mock containers for debugging
  --rendered  use an already rendered tree (with its age.key) instead of rendering
status    run the verification checks against the current kubeconfig
  --rendered  the rendered tree whose objects must exist (default: the workspace root)
";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let (mut plan_only, mut keep, mut rendered) = (false, false, None::<PathBuf>);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--plan" if command == "run" => plan_only = true,
            "--keep" if command == "run" => keep = true,
            "--rendered" => match args.next() {
                Some(dir) => rendered = Some(PathBuf::from(dir)),
                None => {
                    eprintln!("e2e: --rendered needs a directory");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("e2e: unexpected argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match command.as_str() {
        "run" => {
            let options = e2e::harness::Options {
                workspace: workspace(),
                rendered,
                plan_only,
                keep,
            };
            ExitCode::from(e2e::harness::main(options).await)
        }
        "status" => ExitCode::from(status(rendered.unwrap_or_else(workspace)).await),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("e2e: unknown command `{other}`\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

async fn status(rendered: PathBuf) -> u8 {
    let plan = match e2e::live::status_plan(&rendered) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("ai-gateway status: {err}");
            return 2;
        }
    };
    let client = match e2e::live::client().await {
        Ok(client) => client,
        Err(err) => {
            // kube's errors repeat their sources in their messages; the root cause is enough.
            eprintln!("ai-gateway status: {err}\n  cause: {}", err.root_cause());
            return 2;
        }
    };
    // One request first: a cluster that does not answer is said once, not once per check.
    if let Err(err) = client.apiserver_version().await {
        let cause = anyhow::Error::from(err).root_cause().to_string();
        eprintln!(
            "ai-gateway status: cannot reach the cluster of the current kubeconfig: {cause}\n  help: is the cluster running and KUBECONFIG (or ~/.kube/config) pointing at it? `kubectl cluster-info` tries the same\n  nothing was checked"
        );
        return 2;
    }
    let mut outcomes = e2e::live::run_checks(&client, &plan.specs).await;
    outcomes
        .extend(e2e::live::extension_checks(&client, &plan.eg_namespace, &plan.ai_namespace).await);
    print!("{}", e2e::checks::report(&outcomes));
    u8::from(outcomes.iter().any(|o| !o.ok))
}
