//! `cargo xtask validate`: check `cluster.yaml` and `nodes.yaml` without rendering anything.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::{report, util};

pub const HELP: &str = "\
cargo xtask validate [--config FILE] [--nodes FILE]

Checks cluster.yaml and nodes.yaml: every key's type and format, the rules between keys,
unknown keys. Reports every problem at once. Exit code 0 when valid, 1 when not.

Options:
  --config FILE   cluster configuration (default: cluster.yaml at the repository root)
  --nodes FILE    nodes configuration (default: nodes.yaml at the repository root)
";

pub struct Inputs {
    pub config: PathBuf,
    pub nodes: PathBuf,
}

pub fn run(args: &mut lexopt::Parser) -> Result<ExitCode> {
    let mut inputs = Inputs {
        config: util::at_root("cluster.yaml"),
        nodes: util::at_root("nodes.yaml"),
    };
    while let Some(arg) = args.next()? {
        match arg {
            lexopt::Arg::Long("config") => inputs.config = args.value()?.into(),
            lexopt::Arg::Long("nodes") => inputs.nodes = args.value()?.into(),
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(util::unexpected(&other, HELP)),
        }
    }
    let (config, code, _) = load(&inputs)?;
    if config.is_some() {
        eprintln!(
            "{} and {} are valid",
            inputs.config.display(),
            inputs.nodes.display()
        );
    }
    Ok(code)
}

/// Loads and reports; returns the config when valid, the exit code to use otherwise, and the
/// number of warnings printed.
pub fn load(inputs: &Inputs) -> Result<(Option<schema::Config>, ExitCode, usize)> {
    for path in [&inputs.config, &inputs.nodes] {
        if !path.exists() {
            anyhow::bail!(
                "{} does not exist\n  help: run `cargo xtask init` to create cluster.yaml and nodes.yaml from the samples, or pass --config/--nodes",
                path.display()
            );
        }
    }
    let outcome = schema::load(&inputs.config, &inputs.nodes);
    let (errors, warnings) = report::print(&outcome.diagnostics, &std::env::current_dir()?);
    if errors > 0 {
        eprintln!("validation failed: {}", report::summary(errors, warnings));
        return Ok((None, ExitCode::from(1), warnings));
    }
    if warnings > 0 {
        eprintln!(
            "validation passed with {}",
            report::summary(errors, warnings)
        );
    }
    Ok((outcome.config, ExitCode::SUCCESS, warnings))
}
