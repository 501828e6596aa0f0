//! `cargo xtask talos …` and `cargo xtask bootstrap …`: the cluster steps after `configure`.
//!
//! The external tools stay external (talhelper, talosctl, kubectl, helmfile, helm; versions in
//! `tools.toml`). Each subcommand is a list of [`Step`]s built from the rendered tree; the same
//! list is printed by `--plan` (no tool needed), checked by the preflight (every tool present,
//! exit 2 otherwise) and then run. What differs from cluster-template's Taskfiles:
//! - talosctl is called directly with the arguments `talhelper gencommand` would print, so the
//!   plan shows the exact command and nothing is piped into a shell;
//! - sops secrets are sealed and opened by this repository's `secrets` crate in memory: the
//!   plaintext of `talhelper gensecret` and of every bootstrap secret only ever travels through
//!   a pipe, never a file, and no `sops` or `yq` binary is needed.
//!
//! None of the real calls can run on the machine this was written on (no Talos nodes, no
//! cluster): the tests check the plans, the preflight and the runner against fake tools.

pub mod bootstrap;
pub mod talconfig;
pub mod talos;
pub mod tools;

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Where a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Root,
    Talos,
}

/// Environment a command gets, by name; the value is resolved only when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    /// `$SOPS_AGE_KEY_FILE` if set, else `<root>/age.key` (talhelper decrypts talsecret with it).
    SopsAgeKeyFile,
    /// `$KUBECONFIG` if set, else `<root>/kubeconfig` (where `talos kubeconfig` writes it).
    Kubeconfig,
}

impl Env {
    pub fn name(self) -> &'static str {
        match self {
            Env::SopsAgeKeyFile => "SOPS_AGE_KEY_FILE",
            Env::Kubeconfig => "KUBECONFIG",
        }
    }

    pub fn value(self, root: &Path) -> OsString {
        std::env::var_os(self.name())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| match self {
                Env::SopsAgeKeyFile => root.join("age.key").into_os_string(),
                Env::Kubeconfig => root.join("kubeconfig").into_os_string(),
            })
    }
}

/// One external command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: &'static str,
    pub args: Vec<String>,
    pub dir: Dir,
    pub env: Vec<Env>,
}

impl Cmd {
    pub fn new(program: &'static str, args: &[&str]) -> Cmd {
        Cmd {
            program,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            dir: Dir::Root,
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Cmd {
        self.args.push(arg.into());
        self
    }

    pub fn in_talos(mut self) -> Cmd {
        self.dir = Dir::Talos;
        self
    }

    pub fn with_env(mut self, env: Env) -> Cmd {
        self.env.push(env);
        self
    }

    /// The command line as a shell would read it (arguments quoted only when needed).
    pub fn line(&self) -> String {
        std::iter::once(self.program.to_owned())
            .chain(self.args.iter().map(|a| quote(a)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn prefix(&self) -> &'static str {
        match self.dir {
            Dir::Root => "",
            Dir::Talos => "cd talos && ",
        }
    }

    fn env_note(&self) -> String {
        if self.env.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = self.env.iter().map(|e| e.name()).collect();
            format!("   # env: {}", names.join(", "))
        }
    }

    fn command(&self, root: &Path, path: &OsString) -> Command {
        let mut c = Command::new(self.program);
        c.args(&self.args).env("PATH", path);
        c.current_dir(match self.dir {
            Dir::Root => root.to_owned(),
            Dir::Talos => root.join("talos"),
        });
        for e in &self.env {
            c.env(e.name(), e.value(root));
        }
        c
    }
}

fn quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c))
    {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// How often and how long a retried step waits.
pub const RETRY_DELAY: Duration = Duration::from_secs(10);
/// 180 tries of 10 s: half an hour, far longer than a node takes to come up.
pub const RETRY_TRIES: u32 = 180;

/// One step of a cluster command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run it once.
    Run(Cmd),
    /// Run it every [`RETRY_DELAY`] until it succeeds (the node or API is still coming up).
    Retry(Cmd),
    /// Run `cmd`, seal its standard output (a plaintext secret) in memory with the `.sops.yaml`
    /// rule for `to`, write the sealed file. Skipped when `to` exists (never replaced).
    Seal { cmd: Cmd, to: String },
    /// Decrypt `file` (a sops file of the tree) in memory and pipe it into `cmd`.
    Decrypted { file: String, cmd: Cmd },
    /// Pipe `text` (generated here, described by `what`) into `cmd`.
    Text {
        what: String,
        text: String,
        cmd: Cmd,
    },
    /// Pipe the CustomResourceDefinition documents of `producer`'s output into `consumer`.
    Crds { producer: Cmd, consumer: Cmd },
    /// Until `ready` or `registered` succeeds, every [`RETRY_DELAY`].
    WaitNodes { ready: Cmd, registered: Cmd },
}

impl Step {
    /// The plan line(s) for this step.
    pub fn describe(&self, root: &Path) -> String {
        let retry = format!(
            "   # repeated every {}s until it succeeds",
            RETRY_DELAY.as_secs()
        );
        match self {
            Step::Run(c) => format!("{}{}{}", c.prefix(), c.line(), c.env_note()),
            Step::Retry(c) => format!("{}{}{}{retry}", c.prefix(), c.line(), c.env_note()),
            Step::Seal { cmd, to } => {
                let kept = if root.join(to).exists() {
                    "   # skipped: it exists (never replaced)"
                } else {
                    ""
                };
                let run = match cmd.dir {
                    Dir::Root => cmd.line(),
                    Dir::Talos => format!("(cd talos && {})", cmd.line()),
                };
                format!("{run} | <seal in memory with .sops.yaml> > {to}{kept}")
            }
            Step::Decrypted { file, cmd } => format!(
                "<decrypt {file} in memory> | {}{}",
                cmd.line(),
                cmd.env_note()
            ),
            Step::Text { what, cmd, .. } => {
                format!("<{what}> | {}{}", cmd.line(), cmd.env_note())
            }
            Step::Crds { producer, consumer } => format!(
                "{} | <CustomResourceDefinition documents only> | {}{}",
                producer.line(),
                consumer.line(),
                consumer.env_note()
            ),
            Step::WaitNodes { ready, registered } => format!(
                "{} || {}{}{retry}",
                ready.line(),
                registered.line(),
                ready.env_note()
            ),
        }
    }

    fn commands(&self) -> Vec<&Cmd> {
        match self {
            Step::Run(c) | Step::Retry(c) => vec![c],
            Step::Seal { cmd, .. } | Step::Decrypted { cmd, .. } | Step::Text { cmd, .. } => {
                vec![cmd]
            }
            Step::Crds { producer, consumer } => vec![producer, consumer],
            Step::WaitNodes { ready, registered } => vec![ready, registered],
        }
    }
}

/// A cluster command ready to plan or run.
pub struct Job {
    /// `talos apply-node`, for messages.
    pub name: String,
    pub root: PathBuf,
    pub steps: Vec<Step>,
    /// Asks before running (reset, upgrades) unless `yes`.
    pub destructive: Option<String>,
    /// Files that must exist before anything runs: (path relative to root, help).
    pub needs: Vec<(String, String)>,
}

/// Common options: `--plan`, `--yes`, `--root DIR`.
#[derive(Default)]
pub struct Flags {
    pub plan: bool,
    pub yes: bool,
    pub root: Option<PathBuf>,
}

impl Flags {
    /// Takes `--plan` and `--yes`; `false` when `arg` is neither (`--root` takes a value: the
    /// callers match it themselves).
    pub fn take(&mut self, arg: &lexopt::Arg<'_>) -> bool {
        match arg {
            lexopt::Arg::Long("plan") => self.plan = true,
            lexopt::Arg::Long("yes") => self.yes = true,
            _ => return false,
        }
        true
    }

    pub fn root(&self) -> PathBuf {
        self.root
            .clone()
            .unwrap_or_else(|| crate::util::repo_root().unwrap_or_else(crate::util::project_root))
    }
}

/// Plan, preflight, confirm, run: the exit code of a cluster command.
pub fn execute(job: &Job, flags: &Flags) -> Result<ExitCode> {
    if flags.plan {
        println!("{}: plan (nothing is run)", job.name);
        for (i, step) in job.steps.iter().enumerate() {
            println!("  {}. {}", i + 1, step.describe(&job.root));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut needed: Vec<&str> = Vec::new();
    for cmd in job.steps.iter().flat_map(Step::commands) {
        if !needed.contains(&cmd.program) {
            needed.push(cmd.program);
        }
    }
    // helmfile runs helm; nothing else here calls a tool on its own.
    if needed.contains(&"helmfile") && !needed.contains(&"helm") {
        needed.push("helm");
    }
    let preflight = tools::preflight(&needed, &path)?;
    eprint!("{}", preflight.report(&job.name));
    let mut missing_files = Vec::new();
    for (file, help) in &job.needs {
        if !job.root.join(file).exists() {
            missing_files.push(format!("{file}: not found\n  help: {help}"));
        }
    }
    if preflight.missing() > 0 || !missing_files.is_empty() {
        for m in &missing_files {
            eprintln!("{}: {m}", job.name);
        }
        eprintln!(
            "{}: cannot run; `--plan` shows the commands without running them",
            job.name
        );
        return Ok(ExitCode::from(2));
    }
    if let Some(warning) = &job.destructive {
        let stdin = std::io::stdin();
        let interactive = stdin.is_terminal();
        if !confirm(warning, flags.yes, &mut stdin.lock(), interactive)? {
            eprintln!("{}: nothing was run", job.name);
            return Ok(ExitCode::from(1));
        }
    }
    for (i, step) in job.steps.iter().enumerate() {
        eprintln!("==> {}. {}", i + 1, step.describe(&job.root));
        if let Err(err) = run_step(step, &job.root, &path) {
            eprintln!("{}: step {} failed: {err:#}", job.name, i + 1);
            return Ok(ExitCode::from(1));
        }
    }
    eprintln!("{}: done", job.name);
    Ok(ExitCode::SUCCESS)
}

fn confirm(warning: &str, yes: bool, answers: &mut dyn BufRead, interactive: bool) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !interactive {
        bail!(
            "{warning}\n  refusing to go on without confirmation: stdin is not a terminal\n  help: pass --yes to confirm non-interactively"
        );
    }
    eprint!("{warning}\ngo on? [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    answers.read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES"))
}

fn run_step(step: &Step, root: &Path, path: &OsString) -> Result<()> {
    match step {
        Step::Run(cmd) => status(cmd, root, path, None),
        Step::Retry(cmd) => {
            for attempt in 1..=RETRY_TRIES {
                match status(cmd, root, path, None) {
                    Ok(()) => return Ok(()),
                    Err(err) if attempt < RETRY_TRIES => {
                        eprintln!(
                            "    not yet ({err:#}); trying again in {}s ({attempt}/{RETRY_TRIES})",
                            RETRY_DELAY.as_secs()
                        );
                        std::thread::sleep(RETRY_DELAY);
                    }
                    Err(err) => return Err(err),
                }
            }
            unreachable!("the last attempt returns")
        }
        Step::Seal { cmd, to } => {
            let target = root.join(to);
            if target.exists() {
                eprintln!("    {to} exists: kept");
                return Ok(());
            }
            let plaintext = capture(cmd, root, path, secrets::MAX_FILE_BYTES)?;
            let plaintext = String::from_utf8(plaintext).map_err(|_| {
                anyhow::anyhow!("`{}` printed something that is not UTF-8", cmd.line())
            })?;
            let config_path = root.join(".sops.yaml");
            let config = secrets::SopsConfig::load(&config_path).with_context(|| {
                format!(
                    "{}: cannot load (run `cargo xtask configure` first)",
                    config_path.display()
                )
            })?;
            let sealed = secrets::encrypt(to, &plaintext, &config, None)
                .map_err(|e| anyhow::anyhow!("{}", e.in_file(&target)))?;
            schema::writefile::write_atomically(&target, sealed.as_bytes(), 0o600)
                .with_context(|| format!("cannot write {}", target.display()))?;
            eprintln!("    wrote {to} (sealed; commit it)");
            Ok(())
        }
        Step::Decrypted { file, cmd } => {
            let text =
                schema::repofile::read_text_under(root, Path::new(file), secrets::MAX_FILE_BYTES)
                    .map_err(|e| anyhow::anyhow!("{file}: cannot read: {e}"))?;
            let key = Env::SopsAgeKeyFile.value(root);
            let ids = secrets::load_identities_from(Path::new(&key))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let decrypted = secrets::decrypt(&text, &ids)
                .map_err(|e| anyhow::anyhow!("{}", e.in_file(Path::new(file))))?;
            let indent = secrets::SopsConfig::load(&root.join(".sops.yaml"))
                .map(|c| c.indent())
                .unwrap_or(2);
            status(cmd, root, path, Some(decrypted.to_yaml(indent).as_bytes()))
        }
        Step::Text { text, cmd, .. } => status(cmd, root, path, Some(text.as_bytes())),
        Step::Crds { producer, consumer } => {
            let out = capture(producer, root, path, 256 << 20)?;
            let out = String::from_utf8_lossy(&out);
            let crds = bootstrap::crd_documents(&out);
            if crds.is_empty() {
                bail!(
                    "`{}` printed no CustomResourceDefinition\n  help: run it by hand to see why",
                    producer.line()
                );
            }
            status(consumer, root, path, Some(crds.as_bytes()))
        }
        Step::WaitNodes { ready, registered } => {
            for attempt in 1..=RETRY_TRIES {
                if quiet(ready, root, path) || quiet(registered, root, path) {
                    return Ok(());
                }
                eprintln!(
                    "    nodes not registered yet; trying again in {}s ({attempt}/{RETRY_TRIES})",
                    RETRY_DELAY.as_secs()
                );
                std::thread::sleep(RETRY_DELAY);
            }
            bail!(
                "the nodes did not register within {} minutes\n  help: check `talosctl --talosconfig=talos/clusterconfig/talosconfig health`",
                RETRY_TRIES * RETRY_DELAY.as_secs() as u32 / 60
            )
        }
    }
}

/// Runs `cmd` with inherited output, `stdin` piped in when given; an error unless it succeeds.
fn status(cmd: &Cmd, root: &Path, path: &OsString, stdin: Option<&[u8]>) -> Result<()> {
    let mut c = cmd.command(root, path);
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });
    let mut child = c
        .spawn()
        .with_context(|| format!("cannot start {}", cmd.program))?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A command that exits early closes the pipe: its exit status says why.
        let _ = pipe.write_all(bytes);
    }
    let st = child.wait()?;
    if st.success() {
        Ok(())
    } else {
        bail!("`{}` exited with {}", cmd.line(), exit_text(st))
    }
}

fn quiet(cmd: &Cmd, root: &Path, path: &OsString) -> bool {
    cmd.command(root, path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd` and returns its standard output (at most `max` bytes; more is an error).
fn capture(cmd: &Cmd, root: &Path, path: &OsString, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut child = cmd
        .command(root, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", cmd.program))?;
    let mut out = Vec::new();
    if let Some(pipe) = child.stdout.take() {
        pipe.take(max + 1).read_to_end(&mut out)?;
    }
    if out.len() as u64 > max {
        let _ = child.kill();
        let _ = child.wait();
        bail!("`{}` printed more than {max} bytes", cmd.line());
    }
    let st = child.wait()?;
    if !st.success() {
        bail!("`{}` exited with {}", cmd.line(), exit_text(st));
    }
    Ok(out)
}

fn exit_text(st: std::process::ExitStatus) -> String {
    match st.code() {
        Some(code) => format!("status {code}"),
        None => "a signal".to_owned(),
    }
}

/// Loads the rendered Talos configuration or prints why not (exit 2).
pub fn load_talos(root: &Path, command: &str) -> Result<talconfig::Talos, ExitCode> {
    talconfig::Talos::load(root).map_err(|errors| {
        for e in errors {
            eprintln!("{command}: {e}");
        }
        ExitCode::from(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_leaves_plain_words_alone() {
        assert_eq!(quote("--nodes=10.0.0.1"), "--nodes=10.0.0.1");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn confirmation() {
        let mut yes = "y\n".as_bytes();
        let mut no = "\n".as_bytes();
        assert!(confirm("w", false, &mut yes, true).unwrap());
        assert!(!confirm("w", false, &mut no, true).unwrap());
        assert!(confirm("w", true, &mut no, false).unwrap());
        let err = confirm("w", false, &mut no, false).unwrap_err();
        assert!(err.to_string().contains("pass --yes"), "{err}");
    }
}
