//! `cargo xtask`: the only entry point of this repository.
//!
//! This binary turns `cluster.yaml` + `nodes.yaml` into a Talos + Flux GitOps tree and checks it.
//! `main` only dispatches: each subcommand lives in its own module with a
//! `run(args: &mut lexopt::Parser) -> anyhow::Result<ExitCode>` function.
//!
//! Exit codes (ripgrep style): 0 clean, 1 findings (invalid config, failed checks), 2 could not
//! run (bad flags, missing tools, I/O errors).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

// std's print macros panic when stdout or stderr is closed or full; these shadow them in every
// module below (macro_rules! names take precedence over the prelude's) and never panic.
macro_rules! println {
    () => { $crate::util::out::stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::util::out::stdout(format_args!("{}\n", format_args!($($t)*))) };
}
macro_rules! print {
    ($($t:tt)*) => { $crate::util::out::stdout(format_args!($($t)*)) };
}
macro_rules! eprintln {
    () => { $crate::util::out::stderr(format_args!("\n")) };
    ($($t:tt)*) => { $crate::util::out::stderr(format_args!("{}\n", format_args!($($t)*))) };
}
macro_rules! eprint {
    ($($t:tt)*) => { $crate::util::out::stderr(format_args!($($t)*)) };
}

mod ai_gateway;
mod bench;
mod bench_bounds;
mod bench_process;
mod cluster;
mod configure;
mod dist;
mod e2e;
mod init;
mod kubeconfig;
mod lifecycle;
mod renovate;
mod report;
mod schema_cmd;
mod schemas;
mod secrets;
mod util;
mod validate;
mod verify;

/// This process holds the age key and every plaintext secret in memory. Whatever makes it abort
/// (a bug, memory exhaustion), the kernel must not write that memory into `./core` in the
/// repository: core size 0, and not dumpable (which also keeps other processes of the same user
/// from attaching to it). Failures are ignored: the run is no less safe than before.
fn no_core_dumps() {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    #[cfg(target_os = "linux")]
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
}

/// For `cargo xtask bench --bounds`: this process's peak resident memory, from the kernel.
fn report_peak_memory() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(kib) = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().to_owned())
    {
        eprintln!("xtask: peak memory: {kib} KiB");
    }
}

const HELP: &str = "\
cargo xtask <command> [options]

Commands:
  init                     create cluster.yaml, nodes.yaml, age.key, deploy key, token, .sops.yaml
  configure                validate, render, encrypt and write the GitOps tree (--example: try it)
  validate                 check cluster.yaml and nodes.yaml, report every problem
  schema                   write the editor JSON Schemas and docs/configuration.md
  secrets                  encrypt, decrypt, status, keygen (sops + age, no sops binary)
  dist                     build the reproducible release archive
  verify [DIR]             check the rendered tree offline (schemas, CEL, Flux graph, AI Gateway rules)
  schemas <action>         fetch|path|status of the pinned upstream schema set (fetch once, then offline)
  bench                    time configure on generated large configurations
  e2e                      end-to-end test of the AI Gateway on kind (needs docker, kind, kubectl, helm)
  ai-gateway status        check the AI Gateway on the current kubeconfig's cluster
  talos <action>           Talos node tasks: generate-config, apply-node, bootstrap, kubeconfig,
                           upgrade-node, upgrade-k8s, reset (talhelper, talosctl; see tools.toml)
  bootstrap <talos|apps>   install Talos on the nodes / the apps Flux needs (--plan: print only)
  reset                    remove exactly what configure rendered (per .render-manifest.json)
  tidy                     move the template machinery out of a configured repository
  help                     print this help

Run `cargo xtask <command> --help` for the options of one command.
";

fn main() -> ExitCode {
    no_core_dumps();
    let mut args = lexopt::Parser::from_env();
    let command = match args.next() {
        Ok(Some(lexopt::Arg::Value(v))) => v.to_string_lossy().into_owned(),
        Ok(Some(lexopt::Arg::Long("help") | lexopt::Arg::Short('h'))) | Ok(None) => {
            "help".to_owned()
        }
        Ok(Some(other)) => {
            eprintln!("xtask: unexpected argument {}", util::describe(&other));
            eprint!("{HELP}");
            return ExitCode::from(2);
        }
        Err(err) => {
            eprintln!("xtask: {err}");
            return ExitCode::from(2);
        }
    };
    let result: anyhow::Result<ExitCode> = match command.as_str() {
        "help" => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        "init" => init::run(&mut args),
        "configure" => configure::run(&mut args),
        "bench" => bench::run(&mut args),
        "validate" => validate::run(&mut args),
        "secrets" => secrets::run(&mut args),
        "schema" => schema_cmd::run(&mut args),
        "dist" => dist::run(&mut args),
        "reset" => lifecycle::run_reset(&mut args),
        "tidy" => lifecycle::run_tidy(&mut args),
        "verify" => verify::run(&mut args),
        "schemas" => schemas::run(&mut args),
        "e2e" => e2e::run(&mut args),
        "ai-gateway" => ai_gateway::run(&mut args),
        "talos" => cluster::talos::run(&mut args),
        "bootstrap" => cluster::bootstrap::run(&mut args),
        other => {
            eprintln!("xtask: unknown command `{other}`");
            eprint!("{HELP}");
            return ExitCode::from(2);
        }
    };
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::from(2)
        }
    };
    if std::env::var_os("XTASK_REPORT_PEAK").is_some() {
        report_peak_memory();
    }
    match util::out::failure() {
        Some(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::from(2)
        }
        None => code,
    }
}
