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
