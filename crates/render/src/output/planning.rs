//! Planning: what one run would do to each path, computed in memory, and how it is shown.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use schema::{Diagnostic, Location};

use crate::walk::Rendered;

#[cfg(doc)]
use super::applying::apply;
use super::manifest::{
    Entry, MANIFEST_ABOUT, MANIFEST_FILE, MANIFEST_VERSION, Manifest, manifest_bytes,
    read_manifest, sha256_hex,
};
use super::paths::{is_secret, may_remove, temp_path};
use super::read::{AncestorCheck, mode_matches, read_regular};

/// Encrypts secret outputs. Implemented by the caller (`xtask`, with `crates/secrets`): this
/// crate knows nothing about sops or age.
pub trait Sealer {
    /// Returns the bytes to write for the secret output `path` (relative to the output root,
    /// `/`-separated). `previous` is the file on disk at `path`, if any; when it already holds
    /// exactly `plaintext`, return it byte for byte (no churn). It may be anything, including a
    /// file that cannot be decrypted; then seal afresh.
    fn seal(
        &self,
        path: &str,
        plaintext: &[u8],
        previous: Option<&[u8]>,
    ) -> Result<Vec<u8>, String>;
}

/// What happens to one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Rendered, not on disk: written.
    Create,
    /// Rendered, on disk with other contents that this stage wrote: replaced.
    Update,
    /// Rendered, on disk with exactly these bytes: left alone.
    Unchanged,
    /// Listed in the manifest, no longer rendered, untouched since: removed.
    Remove,
    /// Listed in the manifest, no longer rendered, but edited since: kept with a warning and
    /// dropped from the manifest (it is the user's file from now on).
    Keep,
    /// Rendered, but the file on disk is not what this stage last wrote there (edited by hand,
    /// or never written by us): not overwritten unless [`PlanOptions::force`].
    Conflict,
}

/// One path of a [`Plan`].
#[derive(Clone, Debug)]
pub struct Planned {
    /// Relative to the output root, `/`-separated.
    pub path: String,
    pub action: Action,
    /// A `*.sops.*` output: `new` holds sealed bytes, diffs never show contents.
    pub secret: bool,
    /// The template it came from (`templates/config/…`), or the manifest's record for stale files.
    pub source: String,
    /// Bytes to write (sealed for secrets); `None` for stale paths.
    pub(super) new: Option<Vec<u8>>,
    /// Bytes on disk now, when the path is a regular file.
    pub(super) old: Option<Vec<u8>>,
    pub(super) executable: bool,
    /// SHA-256 of `old` when the manifest vouches for it (it is ours to replace).
    pub(super) replaces: Option<String>,
}

/// Options of [`plan`].
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Overwrite conflicting files (hand-edited outputs, or files not written by this stage).
    pub force: bool,
}

/// Everything one run would do, computed in memory. Build it with [`plan`], show it with
/// [`Plan::diff`], carry it out with [`apply`].
#[derive(Debug)]
pub struct Plan {
    pub(super) root: PathBuf,
    pub(super) files: Vec<Planned>,
    /// Entries of the manifest after this run.
    pub(super) manifest: Manifest,
    /// The manifest file's bytes now, if there is one, and what it said.
    manifest_on_disk: Option<Vec<u8>>,
    pub(super) previous: Manifest,
    /// Temporary files a killed run left behind (relative paths), removed by [`apply`].
    pub(super) leftovers: Vec<String>,
    warnings: Vec<Diagnostic>,
    pub(super) conflicts: Vec<Diagnostic>,
    seal_time: Duration,
}

/// How many paths got each action, secrets counted apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
    pub kept: usize,
    pub conflicts: usize,
    /// Secrets created or updated (sealed afresh or re-sealed).
    pub secrets_changed: usize,
    /// Secrets whose previous bytes were kept.
    pub secrets_unchanged: usize,
}

/// Compares `rendered` with the tree under `root` and seals every secret (reading the previous
/// version from disk). Writes nothing. Fails, with every problem, when a secret cannot be sealed,
/// the manifest is unreadable, or a path cannot be written (a directory or symlink in the way).
pub fn plan(
    root: &Path,
    mut rendered: Rendered,
    sealer: &dyn Sealer,
    options: &PlanOptions,
) -> Result<Plan, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let producible = Rendered {
        producible: std::mem::take(&mut rendered.producible),
        ..Rendered::default()
    };
    let (old_manifest, manifest_on_disk) = match read_manifest(root) {
        Ok(m) => m,
        Err(d) => return Err(vec![*d]),
    };
    let mut ancestors = AncestorCheck::new(root);
    let mut files = Vec::with_capacity(rendered.files.len());
    let mut warnings = Vec::new();
    let mut conflicts = Vec::new();
    let mut seal_time = Duration::ZERO;

    for (path, output) in rendered.files {
        let source = output.source.to_string_lossy().replace('\\', "/");
        if let Err(d) = ancestors.check(&path) {
            errors.push(*d);
            continue;
        }
        let old = match read_regular(root, &path) {
            Ok(old) => old,
            Err(d) => {
                errors.push(*d);
                continue;
            }
        };
        let secret = is_secret(&path);
        let new = if secret {
            let started = Instant::now();
            let sealed = sealer.seal(&path, &output.contents, old.as_deref());
            seal_time += started.elapsed();
            match sealed {
                Ok(bytes) => bytes,
                Err(msg) => {
                    errors.push(
                        Diagnostic::error(
                            "render::seal",
                            "",
                            format!("{path}: cannot encrypt: {msg}"),
                        )
                        .at(Some(Location::new(&output.source, 1, 1, 1))),
                    );
                    continue;
                }
            }
        } else {
            output.contents
        };
        let entry = old_manifest.files.get(&path);
        let mut replaces = None;
        let action = match &old {
            None => Action::Create,
            Some(old_bytes) if *old_bytes == new => {
                if mode_matches(root, &path, output.executable) {
                    Action::Unchanged
                } else {
                    replaces = Some(sha256_hex(old_bytes));
                    Action::Update
                }
            }
            Some(old_bytes) => {
                let hash = sha256_hex(old_bytes);
                if entry.is_some_and(|e| e.vouches_for(&hash)) {
                    replaces = Some(hash);
                    Action::Update
                } else {
                    let why = if entry.is_some() {
                        "was edited since the last configure"
                    } else {
                        "exists but was not written by configure"
                    };
                    if options.force {
                        warnings.push(
                            Diagnostic::warning(
                                "render::overwritten",
                                "",
                                format!("{path}: {why}; overwritten (--force)"),
                            )
                            .at(Some(Location::new(
                                root.join(&path),
                                1,
                                1,
                                1,
                            ))),
                        );
                        Action::Update
                    } else {
                        conflicts.push(
                            Diagnostic::error(
                                "render::conflict",
                                "",
                                format!("{path}: {why}; not overwriting it"),
                            )
                            .at(Some(Location::new(root.join(&path), 1, 1, 1)))
                            .with_help(conflict_help(&source)),
                        );
                        Action::Conflict
                    }
                }
            }
        };
        files.push(Planned {
            path,
            action,
            secret,
            source,
            new: Some(new),
            old,
            executable: output.executable,
            replaces,
        });
    }

    // Stale: listed in the manifest, not rendered now.
    let rendered_paths: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut stale = Vec::new();
    let mut leftovers = Vec::new();
    // The manifest's own temporary file is ours whatever state the manifest is in.
    let manifest_tmp = temp_path(MANIFEST_FILE);
    if fs::symlink_metadata(root.join(&manifest_tmp)).is_ok_and(|m| m.is_file()) {
        leftovers.push(manifest_tmp);
    }
    // Temporary files of any path this run writes or the manifest lists are ours: an
    // interrupted or concurrent run left them. Only regular files; never followed.
    // The manifest's entries count only where configure could have written (a forged entry
    // must not reach into `.git` or through a symlinked folder), rendered paths were checked
    // above.
    let mut tmp_candidates: BTreeSet<String> = old_manifest
        .files
        .keys()
        .filter(|p| may_remove(&producible, p) && ancestors.check(p).is_ok())
        .cloned()
        .collect();
    tmp_candidates.extend(files.iter().map(|f| f.path.clone()));
    for path in &tmp_candidates {
        let tmp = temp_path(path);
        if fs::symlink_metadata(root.join(&tmp)).is_ok_and(|m| m.is_file()) {
            leftovers.push(tmp);
        }
    }
    for (path, entry) in &old_manifest.files {
        if rendered_paths.contains(path.as_str()) {
            continue;
        }
        if !may_remove(&producible, path) {
            // Listed, but no template could have written it: the manifest is repository
            // content, and this entry is no proof. Not touched; dropped from the manifest.
            warnings.push(
                Diagnostic::warning(
                    "render::not_ours",
                    "",
                    format!(
                        "{path}: listed in {MANIFEST_FILE} but no template produces it; not removed"
                    ),
                )
                .with_help("configure only removes files a template could have written; if the file is really stale, delete it yourself"),
            );
            stale.push(Planned::stale(path, entry, Action::Keep, None));
            continue;
        }
        if let Err(d) = ancestors.check(path) {
            errors.push(*d);
            continue;
        }
        let old = match read_regular(root, path) {
            Ok(old) => old,
            Err(d) => {
                // A directory now sits where a file was: not ours, leave it.
                warnings.push(Diagnostic {
                    severity: schema::Severity::Warning,
                    ..*d
                });
                continue;
            }
        };
        let Some(old_bytes) = old else {
            // Already gone; it only leaves the manifest (and maybe an empty directory).
            stale.push(Planned::stale(path, entry, Action::Remove, None));
            continue;
        };
        let action = if entry.vouches_for(&sha256_hex(&old_bytes)) {
            Action::Remove
        } else {
            warnings.push(
                Diagnostic::warning(
                    "render::kept",
                    "",
                    format!(
                        "{path}: no longer rendered, but edited since the last configure; kept, and configure will not touch it again"
                    ),
                )
                .at(Some(Location::new(root.join(path), 1, 1, 1)))
                .with_help("delete it yourself if you no longer need it"),
            );
            Action::Keep
        };
        stale.push(Planned::stale(path, entry, action, Some(old_bytes)));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    files.extend(stale);
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let manifest = Manifest {
        about: MANIFEST_ABOUT.to_owned(),
        version: MANIFEST_VERSION,
        complete: true,
        files: files
            .iter()
            .filter_map(|f| {
                let bytes = match f.action {
                    Action::Create | Action::Update | Action::Unchanged => f.new.as_ref()?,
                    // A conflicting file stays listed as it was: it is still not ours.
                    Action::Conflict => {
                        return old_manifest.files.get(&f.path).map(|e| {
                            (
                                f.path.clone(),
                                Entry {
                                    replaces: None,
                                    ..e.clone()
                                },
                            )
                        });
                    }
                    Action::Remove | Action::Keep => return None,
                };
                Some((
                    f.path.clone(),
                    Entry {
                        sha256: sha256_hex(bytes),
                        source: f.source.clone(),
                        replaces: None,
                    },
                ))
            })
            .collect(),
    };
    Ok(Plan {
        root: root.to_owned(),
        files,
        manifest,
        manifest_on_disk,
        previous: old_manifest,
        leftovers,
        warnings,
        conflicts,
        seal_time,
    })
}

impl Planned {
    /// A path the manifest lists and this run does not render.
    fn stale(path: &str, entry: &Entry, action: Action, old: Option<Vec<u8>>) -> Planned {
        Planned {
            path: path.to_owned(),
            action,
            secret: is_secret(path),
            source: entry.source.clone(),
            new: None,
            old,
            executable: false,
            replaces: None,
        }
    }

    /// Whether carrying out the plan deletes a file at this path.
    pub fn removes_file(&self) -> bool {
        self.action == Action::Remove && self.old.is_some()
    }
}

impl Plan {
    /// Every path, sorted.
    pub fn files(&self) -> &[Planned] {
        &self.files
    }

    /// Hand-edited files kept, conflicts overwritten with `force`, things left alone.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// Rendered paths whose file on disk is not ours; [`apply`] refuses while there are any.
    pub fn conflicts(&self) -> &[Diagnostic] {
        &self.conflicts
    }

    /// Time spent in [`Sealer::seal`].
    pub fn seal_time(&self) -> Duration {
        self.seal_time
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for f in &self.files {
            match f.action {
                Action::Create => c.created += 1,
                Action::Update => c.updated += 1,
                Action::Unchanged => c.unchanged += 1,
                Action::Remove if f.old.is_some() => c.removed += 1,
                Action::Remove => {}
                Action::Keep => c.kept += 1,
                Action::Conflict => c.conflicts += 1,
            }
            if f.secret {
                match f.action {
                    Action::Create | Action::Update => c.secrets_changed += 1,
                    Action::Unchanged => c.secrets_unchanged += 1,
                    _ => {}
                }
            }
        }
        c
    }

    /// Whether [`apply`] would change anything on disk.
    pub fn is_noop(&self) -> bool {
        self.leftovers.is_empty()
            && self
                .files
                .iter()
                .all(|f| matches!(f.action, Action::Unchanged | Action::Conflict))
            && self.manifest_on_disk.as_deref() == Some(manifest_bytes(&self.manifest).as_slice())
    }

    /// What [`apply`] would change, for people: a unified diff per plaintext file, one line per
    /// secret (never its contents), one line per removed or kept file. Empty when nothing
    /// would change.
    pub fn diff(&self) -> String {
        let mut out = String::new();
        for f in &self.files {
            let line = match (f.action, f.secret) {
                (Action::Unchanged, _) => continue,
                (Action::Create, true) => "new secret (values not shown)",
                (Action::Update, true) => "secret changed (values not shown)",
                (Action::Conflict, true) => {
                    "secret on disk is not the one configure wrote; not overwritten (values not shown)"
                }
                (Action::Remove, _) if f.old.is_none() => continue,
                (Action::Remove, _) => "no longer rendered; would be removed",
                (Action::Keep, _) => {
                    "no longer rendered but edited by hand; would be kept and forgotten"
                }
                (Action::Conflict, false) => {
                    out.push_str(&format!(
                        "# {}: on disk is not what configure wrote; not overwritten. Rendered version:\n",
                        f.path
                    ));
                    out.push_str(&text_diff(f));
                    continue;
                }
                (Action::Create | Action::Update, false) => {
                    out.push_str(&text_diff(f));
                    continue;
                }
            };
            out.push_str(&format!("# {}: {line}\n", f.path));
        }
        out
    }
}

/// Where a lasting change to an output goes: the override of its template.
fn conflict_help(source: &str) -> String {
    let keep = match source.split_once("/config/") {
        Some((root, rel)) => {
            format!("put your change into {root}/overrides/{rel} (it replaces {source})")
        }
        None => format!("put your change into {source}"),
    };
    format!("{keep}, move the file away, or rerun with --force to overwrite it")
}

fn text_diff(f: &Planned) -> String {
    let old = f.old.as_deref().unwrap_or_default();
    let new = f.new.as_deref().unwrap_or_default();
    let (Ok(old_text), Ok(new_text)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else {
        return format!("# {}: binary file changed\n", f.path);
    };
    if old_text == new_text {
        return format!("# {}: file mode changed\n", f.path);
    }
    let from = if f.old.is_some() {
        format!("a/{}", f.path)
    } else {
        "/dev/null".to_owned()
    };
    let mut text = similar::TextDiff::from_lines(old_text, new_text)
        .unified_diff()
        .context_radius(3)
        .header(&from, &format!("b/{}", f.path))
        .to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}
