//! `cargo xtask e2e [--plan] [--keep] [--rendered DIR]`: the end-to-end test on kind.
//!
//! The harness lives in the `e2e` crate (tokio, kube, testcontainers, …), which xtask must not
//! link: this module runs `cargo run --package e2e --bin e2e -- run …` (dev profile: it shares
//! the build with `cargo test -p e2e`; the harness is not performance-sensitive) and passes the
//! exit code on (0 passed, 1 a check failed, 2 could not run, e.g. no container engine).
//!
//! A first build of that crate takes minutes, so what can be checked without it is checked
//! here first ([`preflight`]: the tools of an e2e run; `ai-gateway status` checks that the
//! cluster is reachable), and a build that is about to start is announced with its rough
//! duration.

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
    // `--plan` only reads the rendered tree: it needs none of the tools.
    if !forwarded.iter().any(|a| a == "--plan") {
        let path = std::env::var_os("PATH").unwrap_or_default();
        if let Some(report) = preflight(&path) {
            eprint!("{report}");
            return Ok(ExitCode::from(2));
        }
    }
    run_e2e_binary("run", &forwarded)
}

/// One tool of an e2e run and the command that proves it works.
struct Tool {
    name: &'static str,
    probe: &'static [&'static str],
    how_to_get: &'static str,
}

/// The same tools the e2e crate's own preflight checks (e2e/src/preflight.rs), checked here so
/// that a machine without Docker hears it before the harness is compiled.
const TOOLS: &[Tool] = &[
    Tool {
        name: "docker",
        probe: &["info", "--format", "{{.ServerVersion}}"],
        how_to_get: "install Docker Engine and start it (https://docs.docker.com/engine/install/)",
    },
    Tool {
        name: "kind",
        probe: &["version"],
        how_to_get: "https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    },
    Tool {
        name: "kubectl",
        probe: &["version", "--client"],
        how_to_get: "https://kubernetes.io/docs/tasks/tools/",
    },
    Tool {
        name: "helm",
        probe: &["version", "--short"],
        how_to_get: "https://helm.sh/docs/intro/install/",
    },
];

/// What is missing or broken for an e2e run on `path`, for people; `None` when all is ready.
pub fn preflight(path: &std::ffi::OsStr) -> Option<String> {
    let mut lines = Vec::new();
    let mut bad = 0;
    for tool in TOOLS {
        match crate::cluster::tools::find_in_path(tool.name, path) {
            None => {
                bad += 1;
                lines.push(format!(
                    "  [MISS] {}: not found on PATH\n         help: {}",
                    tool.name, tool.how_to_get
                ));
            }
            Some(exe) => {
                let out = Command::new(&exe)
                    .args(tool.probe)
                    .env("PATH", path)
                    .stdin(std::process::Stdio::null())
                    .output();
                match out {
                    Ok(o) if o.status.success() => {
                        lines.push(format!("  [ok  ] {}: {}", tool.name, exe.display()))
                    }
                    Ok(o) => {
                        bad += 1;
                        let text = String::from_utf8_lossy(&o.stderr).into_owned()
                            + &String::from_utf8_lossy(&o.stdout);
                        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                        lines.push(format!(
                            "  [FAIL] {} ({}): `{} {}` failed: {}\n         help: {}",
                            tool.name,
                            exe.display(),
                            tool.name,
                            tool.probe.join(" "),
                            schema::terminal_safe(first.trim()),
                            tool.how_to_get
                        ));
                    }
                    Err(e) => {
                        bad += 1;
                        lines.push(format!("  [FAIL] {} ({}): {e}", tool.name, exe.display()));
                    }
                }
            }
        }
    }
    (bad > 0).then(|| {
        format!(
            "e2e preflight: cannot run, nothing was built or created\n{}\n\
             e2e: not run. This is not a pass: the end-to-end checks need a container engine (see docs/e2e.md).\n",
            lines.join("\n")
        )
    })
}

/// What a first build of the e2e harness costs. Measured (docs/e2e.md): a cold
/// `cargo build -p e2e --bin e2e` compiles about 230 crates in about 7.7 minutes of CPU time
/// (28 minutes of wall time on a 2-core machine shared with four other builds).
pub const FIRST_BUILD: &str = "about 230 crates, 8 minutes of CPU time: some 4-5 minutes on two idle cores, more on a busy machine";

/// The e2e binary of a previous build, if there is one (then cargo only checks it is current).
fn built_binary(root: &std::path::Path) -> bool {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    target.join("debug").join("e2e").is_file()
}

/// Run the `e2e` binary of the `e2e` crate with `command` and `args`; pass its exit code on.
pub fn run_e2e_binary(command: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let first = !built_binary(root);
    if first {
        eprintln!(
            "e2e: building the e2e harness first (kube, tokio, testcontainers): {FIRST_BUILD}; later runs start in seconds"
        );
    }
    let mut cargo_args = vec!["run"];
    // A first build shows cargo's progress; a rebuild check stays quiet.
    if !first {
        cargo_args.push("--quiet");
    }
    cargo_args.extend(["--package", "e2e", "--bin", "e2e", "--", command]);
    let mut cmd = Command::new(cargo);
    // The binary runs from the repository root: a relative KUBECONFIG must name the same files
    // there as here (where `ai-gateway status` just checked them).
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let absolute: Vec<std::path::PathBuf> = std::env::split_paths(&list)
            .map(|p| std::path::absolute(&p).unwrap_or(p))
            .collect();
        if let Ok(joined) = std::env::join_paths(absolute) {
            cmd.env("KUBECONFIG", joined);
        }
    }
    let status = cmd
        .current_dir(root)
        .args(cargo_args)
        .args(args)
        .status()
        .context("cannot run cargo")?;
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
        None => ExitCode::from(2),
    })
}
