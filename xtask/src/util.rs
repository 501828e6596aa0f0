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
