//! `cargo xtask e2e [--plan] [--keep] [--rendered DIR]`: the end-to-end test on kind.
//!
//! The harness lives in the `e2e` crate (tokio, kube, testcontainers, …), which xtask must not
//! link: this module runs `cargo run --package e2e --bin e2e -- run …` (dev profile: it shares
//! the build with `cargo test -p e2e`; the harness is not performance-sensitive) and passes the
//! exit code on (0 passed, 1 a check failed, 2 could not run, e.g. no container engine).

use std::process::{Command, ExitCode};

use anyhow::Context;

const HELP: &str = "\
cargo xtask e2e [--plan] [--keep] [--rendered DIR]

Render e2e/cluster.yaml, build a kind cluster with mock Azure OpenAI and MCP upstreams, install
what `configure` rendered (Envoy Gateway, Flux, AI Gateway), and check that it really works.
Needs docker (with a running engine), kind, kubectl and helm; without them it stops at preflight
with exit code 2 and creates nothing.

Options:
  --plan            print every step it would run, from the rendered files, and stop
  --keep            leave the cluster and mock containers for debugging
  --rendered DIR    use an already rendered tree (with its age.key)
";

pub fn run(args: &mut lexopt::Parser) -> anyhow::Result<ExitCode> {
    let mut forwarded = Vec::new();
    while let Some(arg) = args.next()? {
        match arg {
            lexopt::Arg::Long("plan") => forwarded.push("--plan".to_owned()),
            lexopt::Arg::Long("keep") => forwarded.push("--keep".to_owned()),
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
            other => anyhow::bail!("e2e: unexpected argument {}", crate::util::describe(&other)),
        }
    }
    run_e2e_binary("run", &forwarded)
}

/// Run the `e2e` binary of the `e2e` crate with `command` and `args`; pass its exit code on.
pub fn run_e2e_binary(command: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "run",
            "--quiet",
            "--package",
            "e2e",
            "--bin",
            "e2e",
            "--",
            command,
        ])
        .args(args)
        .status()
        .context("cannot run cargo")?;
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
        None => ExitCode::from(2),
    })
}
