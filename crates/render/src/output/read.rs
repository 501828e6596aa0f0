//! Reading the tree on disk safely: regular files only, no symlinked or file ancestors.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use schema::{Diagnostic, Location};

use super::OUTPUT_MAX_BYTES;

#[cfg(unix)]
pub(super) fn mode_matches(root: &Path, rel: &str, executable: bool) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(root.join(rel)).is_ok_and(|m| (m.permissions().mode() & 0o111 != 0) == executable)
}

#[cfg(not(unix))]
pub(super) fn mode_matches(_: &Path, _: &str, _: bool) -> bool {
    true
}

/// The bytes of `root/rel` when it is a regular file, `None` when absent; an error when
/// something else is there.
pub(super) fn read_regular(root: &Path, rel: &str) -> Result<Option<Vec<u8>>, Box<Diagnostic>> {
    let abs = root.join(rel);
    match fs::symlink_metadata(&abs) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Box::new(Diagnostic::error(
            "render::read",
            "",
            format!("cannot inspect {}: {e}", abs.display()),
        ))),
        Ok(m) if m.is_file() => schema::repofile::read(&abs, OUTPUT_MAX_BYTES)
            .map(Some)
            .map_err(|e| {
                Box::new(
                    Diagnostic::error("render::read", "", format!("{rel} {e}")).with_help(e.help()),
                )
            }),
        Ok(m) => {
            let what = if m.is_dir() {
                "a directory"
            } else {
                "a symlink or special file"
            };
            Err(Box::new(
                Diagnostic::error(
                    "render::in_the_way",
                    "",
                    format!(
                        "{rel}: {what} is where configure writes a file; configure does not touch it"
                    ),
                )
                .at(Some(Location::new(abs, 1, 1, 1)))
                .with_help("move it away"),
            ))
        }
    }
}

/// Refuses paths whose directories, inside the output root, are symlinks or files: writing
/// through a symlink would touch files outside the tree.
pub(super) struct AncestorCheck<'a> {
    root: &'a Path,
    seen: HashMap<String, Result<(), String>>,
}

impl<'a> AncestorCheck<'a> {
    pub(super) fn new(root: &'a Path) -> Self {
        AncestorCheck {
            root,
            seen: HashMap::new(),
        }
    }

    pub(super) fn check(&mut self, rel: &str) -> Result<(), Box<Diagnostic>> {
        let mut dir = String::new();
        for component in rel
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, d)| d)
        {
            if !dir.is_empty() {
                dir.push('/');
            }
            dir.push_str(component);
            let root = self.root;
            let verdict =
                self.seen.entry(dir.clone()).or_insert_with(|| {
                    match fs::symlink_metadata(root.join(&dir)) {
                        Err(_) => Ok(()),
                        Ok(m) if m.is_dir() => Ok(()),
                        Ok(m) if m.file_type().is_symlink() => Err("is a symlink".to_owned()),
                        Ok(_) => Err("is a file".to_owned()),
                    }
                });
            if let Err(why) = verdict {
                return Err(Box::new(
                    Diagnostic::error(
                        "render::in_the_way",
                        "",
                        format!("{rel}: cannot write it because {dir} {why}; configure does not write through it"),
                    )
                    .at(Some(Location::new(root.join(&dir), 1, 1, 1)))
                    .with_help("move it away"),
                ));
            }
        }
        Ok(())
    }
}
