//! Small helpers shared by the subcommands.

use std::path::PathBuf;

/// Human form of a lexopt argument for error messages.
pub fn describe(arg: &lexopt::Arg<'_>) -> String {
    match arg {
        lexopt::Arg::Short(c) => format!("-{c}"),
        lexopt::Arg::Long(s) => format!("--{s}"),
        lexopt::Arg::Value(v) => format!("`{}`", v.to_string_lossy()),
    }
}

/// The repository root: the parent of this crate's manifest directory.
pub fn project_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The repository a command acts on when no path is given: the nearest directory at or above the
/// working directory that holds this workspace (`Cargo.toml` and `xtask/Cargo.toml`), so that a
/// command run from `talos/` or `kubernetes/apps/` finds `cluster.yaml` and the key files at the
/// root instead of looking for (or creating) them where it stands. `None` outside any such
/// repository (a command then uses the working directory, as for a scratch copy).
pub fn repo_root() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .find(|dir| is_repo_root(dir))
        .map(|dir| dir.to_owned())
}

/// Whether `dir` is the root of a repository made from this template (before `tidy`).
pub fn is_repo_root(dir: &std::path::Path) -> bool {
    dir.join("Cargo.toml").is_file() && dir.join("xtask").join("Cargo.toml").is_file()
}

/// [`repo_root`], or the working directory outside a repository.
pub fn root_or_cwd() -> PathBuf {
    repo_root()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `name` at the repository root, or relative to the working directory outside a repository.
/// Paths are shown as the user would type them: relative when the root is the working directory.
pub fn at_root(name: &str) -> PathBuf {
    match (repo_root(), std::env::current_dir().ok()) {
        (Some(root), Some(cwd)) if root != cwd => root.join(name),
        _ => PathBuf::from(name),
    }
}

/// The error for an argument a command does not take, with its help text.
pub fn unexpected(arg: &lexopt::Arg<'_>, help: &str) -> anyhow::Error {
    anyhow::anyhow!("unexpected argument {}\n\n{help}", describe(arg))
}

/// Output that never panics: `println!` and friends are replaced crate-wide (see `main.rs`) by
/// these, because std's panic when stdout or stderr is closed (`cargo xtask … | head -1`) or full
/// (`> /dev/full`). A closed pipe is the reader saying it has seen enough: the rest is dropped.
/// Any other failure is remembered, and `main` turns it into exit 2 at the end.
pub mod out {
    use std::fmt;
    use std::io::{self, Write};
    use std::sync::Mutex;

    static FAILED: Mutex<Option<String>> = Mutex::new(None);

    pub fn stdout(args: fmt::Arguments<'_>) {
        let r = io::stdout().lock().write_fmt(args);
        note("stdout", r);
    }

    pub fn stderr(args: fmt::Arguments<'_>) {
        let r = io::stderr().lock().write_fmt(args);
        note("stderr", r);
    }

    /// Raw bytes to stdout (decrypted files, encrypted output).
    #[allow(dead_code)]
    pub fn stdout_bytes(bytes: &[u8]) {
        let mut lock = io::stdout().lock();
        let r = lock.write_all(bytes).and_then(|()| lock.flush());
        note("stdout", r);
    }

    /// Flushes stdout; a write error that happened at any point is returned once.
    pub fn failure() -> Option<String> {
        let r = io::stdout().lock().flush();
        note("stdout", r);
        FAILED.lock().ok().and_then(|mut f| f.take())
    }

    fn note(stream: &str, r: io::Result<()>) {
        match r {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                if let Ok(mut f) = FAILED.lock()
                    && f.is_none()
                {
                    *f = Some(format!("cannot write to {stream}: {e}"));
                }
            }
        }
    }
}
