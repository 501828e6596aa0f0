//! `cargo xtask schema`: write the JSON Schemas for editors and the configuration reference.
//!
//! All three files are generated from `crates/schema`'s field table and committed, so editors
//! find the schemas through the modeline of the sample files right after a clone.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::util;

pub const HELP: &str = "\
cargo xtask schema [--check]

Writes .schemas/cluster.schema.json and .schemas/nodes.schema.json (JSON Schema draft-07, used
by editors through the yaml-language-server modeline of cluster.yaml and nodes.yaml) and
docs/configuration.md, all generated from crates/schema.

Options:
  --check   write nothing; exit 1 if a generated file is out of date
";

pub fn run(args: &mut lexopt::Parser) -> Result<ExitCode> {
    let mut check = false;
    while let Some(arg) = args.next()? {
        match arg {
            lexopt::Arg::Long("check") => check = true,
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(util::unexpected(&other, HELP)),
        }
    }
    let root = util::project_root();
    let stale = stale_files(&root)?;
    if check {
        if stale.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        for (path, _) in &stale {
            eprintln!("out of date: {}", path.display());
        }
        eprintln!("  help: run `cargo xtask schema` and commit the result");
        return Ok(ExitCode::from(1));
    }
    for (path, contents) in &stale {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Never through a symlink planted at the path (the repository may come from a PR).
        schema::writefile::write_atomically(path, contents.as_ref(), 0o644)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "wrote {}",
            path.strip_prefix(&root).unwrap_or(path).display()
        );
    }
    if stale.is_empty() {
        eprintln!("generated files are up to date");
    }
    Ok(ExitCode::SUCCESS)
}

/// Every generated file with its expected contents.
pub fn generated(root: &Path) -> Vec<(PathBuf, String)> {
    vec![
        (
            root.join(".schemas/cluster.schema.json"),
            schema::cluster_json_schema(),
        ),
        (
            root.join(".schemas/nodes.schema.json"),
            schema::nodes_json_schema(),
        ),
        (
            root.join("docs/configuration.md"),
            schema::configuration_reference(),
        ),
    ]
}

fn stale_files(root: &Path) -> Result<Vec<(PathBuf, String)>> {
    Ok(generated(root)
        .into_iter()
        .filter(|(path, want)| std::fs::read_to_string(path).ok().as_deref() != Some(want.as_str()))
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_files_are_up_to_date() {
        let root = crate::util::project_root();
        let stale = super::stale_files(&root).unwrap();
        let names: Vec<String> = stale.iter().map(|(p, _)| p.display().to_string()).collect();
        assert!(
            names.is_empty(),
            "out of date: {names:?}\nNOTE: run `cargo xtask schema` locally and commit the updated files"
        );
    }
}
