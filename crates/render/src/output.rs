//! The output stage: compare a render with the tree on disk ([`plan`]), then write it ([`apply`]).
//!
//! **Invariants**
//! - Nothing is written unless every template rendered and every secret was sealed: the whole
//!   tree is computed in memory first.
//! - A `*.sops.*` output reaches the disk only as the bytes the [`Sealer`] returned; temporary
//!   files hold those sealed bytes too, never plaintext.
//! - Every file is replaced atomically (temporary file in the same directory, fsync, rename), so
//!   at every instant a path holds either its old or its new contents.
//! - The render manifest (`.render-manifest.json` at the output root) lists every file this
//!   stage wrote with the SHA-256 of the bytes written. Only files it lists are ever removed, and
//!   only when their bytes are still the ones recorded; a file edited since is kept with a
//!   warning. A rendered path whose file on disk is not the recorded one (edited by hand, or
//!   never written by us) is a conflict and is not overwritten unless asked.
//! - The manifest is written after the files. Before the first file is touched, a journal
//!   version of it (`"complete": false`) records both the old and the new hash of every file
//!   about to change, so a run killed half-way is recognised and finished by the next run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use schema::{Diagnostic, Location};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::walk::Rendered;

/// File name of the render manifest, at the output root.
pub const MANIFEST_FILE: &str = ".render-manifest.json";
/// Suffix of temporary files: `<dir>/.<name>.render-tmp`.
const TMP_SUFFIX: &str = ".render-tmp";
const MANIFEST_VERSION: u32 = 1;
const MANIFEST_ABOUT: &str = "Written by `cargo xtask configure`: every file it rendered, with the SHA-256 of the bytes written. Commit it. Files listed here and no longer rendered are removed unless edited since; nothing else is ever touched.";

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

/// Whether an output path is a secret: its file name contains `.sops.`
/// (`cluster-secrets.sops.yaml`). The sops configuration `.sops.yaml` itself is not.
pub fn is_secret(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.trim_start_matches('.').contains(".sops.")
}

/// Names the output stage keeps for itself; no template may produce them.
pub(crate) fn is_reserved(path: &str) -> bool {
    path == MANIFEST_FILE || path == LOCK_FILE || path.ends_with(TMP_SUFFIX)
}

/// The lock file at the output root, held while a run plans and writes (git-ignored).
pub const LOCK_FILE: &str = ".render.lock";
/// The largest render manifest read: about 100 times the manifest of the largest benchmarked
/// configuration.
pub const MANIFEST_MAX_BYTES: u64 = 16 << 20;
/// The largest existing output read to compare with its new version.
pub const OUTPUT_MAX_BYTES: u64 = 32 << 20;

/// Whether the output stage may remove `path` because the manifest lists it: only a path some
/// template could have produced ([`Rendered::producible`]: under a top-level folder the shipped
/// `config/` templates write to), and never anything inside `.git`. The manifest is repository
/// content, so its list alone is no proof that configure wrote a file.
pub fn may_remove(rendered: &Rendered, path: &str) -> bool {
    is_safe_relative(path)
        && !is_reserved(path)
        && !is_inside_git(path)
        && rendered.producible.contains(path)
}

/// Whether a `/`-separated path has a `.git` component (any case): no output is written or
/// removed there (a hook would run code on the next git command).
pub(crate) fn is_inside_git(path: &str) -> bool {
    path.split('/').any(|c| c.eq_ignore_ascii_case(".git"))
}

/// Holds the output root's lock until dropped: two runs never plan or write one tree at once.
#[derive(Debug)]
pub struct OutputLock {
    _file: fs::File,
}

/// Takes the lock of `root` (creating the root and `.render.lock` if needed). Fails at once, with
/// a diagnostic, when another run holds it: waiting could hang forever behind a stuck run.
pub fn lock(root: &Path) -> Result<OutputLock, Box<Diagnostic>> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |what: String| {
        Box::new(
            Diagnostic::error("render::lock", "", what)
                .with_help("another `cargo xtask configure` (or reset) is running on this tree; wait for it, or stop it"),
        )
    };
    fs::create_dir_all(root).map_err(|e| fail(format!("cannot create {}: {e}", root.display())))?;
    let path = root.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc_nofollow())
        .open(&path)
        .map_err(|e| fail(format!("cannot open {}: {e}", path.display())))?;
    match file.metadata() {
        Ok(m) if m.is_file() => {}
        _ => return Err(fail(format!("{} is not a regular file", path.display()))),
    }
    match file.try_lock() {
        Ok(()) => Ok(OutputLock { _file: file }),
        Err(fs::TryLockError::WouldBlock) => {
            Err(fail(format!("{} is locked by another run", root.display())))
        }
        Err(fs::TryLockError::Error(e)) => {
            Err(fail(format!("cannot lock {}: {e}", path.display())))
        }
    }
}

/// `O_NOFOLLOW | O_NONBLOCK`: a planted symlink or FIFO at the lock path is refused, not used.
fn libc_nofollow() -> i32 {
    schema::repofile::NOFOLLOW_NONBLOCK
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
    new: Option<Vec<u8>>,
    /// Bytes on disk now, when the path is a regular file.
    old: Option<Vec<u8>>,
    executable: bool,
    /// SHA-256 of `old` when the manifest vouches for it (it is ours to replace).
    replaces: Option<String>,
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
    root: PathBuf,
    files: Vec<Planned>,
    /// Entries of the manifest after this run.
    manifest: Manifest,
    /// The manifest file's bytes now, if there is one, and what it said.
    manifest_on_disk: Option<Vec<u8>>,
    previous: Manifest,
    /// Temporary files a killed run left behind (relative paths), removed by [`apply`].
    leftovers: Vec<String>,
    warnings: Vec<Diagnostic>,
    conflicts: Vec<Diagnostic>,
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

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Manifest {
    #[serde(default)]
    about: String,
    version: u32,
    /// `false` while a run is applying: the journal written before the first file is touched.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    complete: bool,
    files: BTreeMap<String, Entry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    /// SHA-256 (hex) of the bytes written.
    sha256: String,
    /// The template it was rendered from.
    source: String,
    /// Journal only: the hash of the file being replaced, which is still ours if the run stops
    /// before the rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replaces: Option<String>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Entry {
    fn vouches_for(&self, hash: &str) -> bool {
        self.sha256 == hash || self.replaces.as_deref() == Some(hash)
    }
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

/// Options of [`apply`].
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Stop dead after this many filesystem operations, as if the process were killed: no
    /// cleanup, no error handling. For tests of interruption safety only.
    pub crash_after: Option<usize>,
}

/// Why [`apply`] stopped.
#[derive(Debug)]
pub enum ApplyError {
    /// The plan has conflicts ([`Plan::conflicts`]); nothing was written.
    Conflicts,
    /// A filesystem operation failed; what was written so far is consistent (see the module
    /// invariants) and the next run finishes the job.
    Io(Box<Diagnostic>),
    /// [`ApplyOptions::crash_after`] was reached.
    Crashed,
}

/// Carries out `plan`: leftover temporary files removed, journal manifest written, files
/// written atomically, stale files removed (and directories they leave empty), final manifest
/// written. Does nothing at all when nothing changed.
pub fn apply(plan: &Plan, options: &ApplyOptions) -> Result<(), ApplyError> {
    if !plan.conflicts.is_empty() {
        return Err(ApplyError::Conflicts);
    }
    if plan.is_noop() {
        return Ok(());
    }
    let root = &plan.root;
    let mut ops = Ops {
        done: 0,
        limit: options.crash_after,
    };
    ops.step()?;
    fs::create_dir_all(root).map_err(|e| io_error(root, "create the output directory", e))?;

    for tmp in &plan.leftovers {
        ops.step()?;
        remove_if_present(&root.join(tmp))?;
    }

    let writes: Vec<&Planned> = plan
        .files
        .iter()
        .filter(|f| matches!(f.action, Action::Create | Action::Update))
        .collect();
    let removals: Vec<&Planned> = plan
        .files
        .iter()
        .filter(|f| f.action == Action::Remove)
        .collect();

    if !writes.is_empty() || removals.iter().any(|f| f.old.is_some()) {
        // The journal: files about to change are vouched for in both versions, files about to
        // be removed are still listed.
        let mut journal = plan.manifest.clone();
        journal.complete = false;
        for f in &writes {
            if let Some(e) = journal.files.get_mut(&f.path) {
                e.replaces = f.replaces.clone();
            }
        }
        for f in &removals {
            if let Some(e) = plan.previous.files.get(&f.path) {
                journal.files.insert(f.path.clone(), e.clone());
            }
        }
        write_atomic(
            root,
            MANIFEST_FILE,
            &manifest_bytes(&journal),
            false,
            &mut ops,
        )?;
    }

    // Directories for new files first, then every temporary file written and synced in
    // parallel (fsync dominates the time; the filesystem journal batches concurrent syncs),
    // then the renames one by one, so each path flips from old to new in one step.
    let mut touched_dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for dir in writes
        .iter()
        .map(|f| parent_of(&f.path))
        .collect::<BTreeSet<_>>()
    {
        let abs = root.join(dir);
        if !abs.is_dir() {
            ops.step()?;
            fs::create_dir_all(&abs).map_err(|e| io_error(&abs, "create directory", e))?;
        }
        touched_dirs.insert(abs);
    }
    // Two operations per temporary file (first half written; rest written and synced), numbered
    // in plan order, so an interruption point means the same thing however threads run.
    let first_op = ops.done;
    let temps = parallel(writes.len(), |i| {
        let f = writes[i];
        let budget = ops.limit.map(|l| l.saturating_sub(first_op + 2 * i));
        write_temp(
            root,
            &f.path,
            f.new.as_deref().unwrap_or_default(),
            f.executable,
            budget,
        )
    });
    temps.into_iter().collect::<Result<Vec<()>, ApplyError>>()?;
    ops.done = first_op + 2 * writes.len();
    if ops.limit.is_some_and(|l| l < ops.done) {
        return Err(ApplyError::Crashed);
    }
    for f in &writes {
        ops.step()?;
        let target = root.join(&f.path);
        fs::rename(root.join(temp_path(&f.path)), &target)
            .map_err(|e| io_error(&target, "replace", e))?;
    }
    for f in &removals {
        if f.old.is_some() {
            ops.step()?;
            remove_if_present(&root.join(&f.path))?;
        }
        // Directories this leaves empty go too; a non-empty one (holding anything at all)
        // stops the walk. The root is never removed.
        let mut dir = parent_of(&f.path);
        while !dir.is_empty() {
            let abs = root.join(dir);
            let empty = fs::read_dir(&abs).is_ok_and(|mut d| d.next().is_none());
            if !empty {
                break;
            }
            ops.step()?;
            match fs::remove_dir(&abs) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => break,
            }
            dir = parent_of(dir);
        }
        touched_dirs.insert(root.join(parent_of(&f.path)));
    }
    let touched_dirs: Vec<PathBuf> = touched_dirs.into_iter().collect();
    parallel(touched_dirs.len(), |i| sync_dir(&touched_dirs[i]));
    write_atomic(
        root,
        MANIFEST_FILE,
        &manifest_bytes(&plan.manifest),
        false,
        &mut ops,
    )?;
    Ok(())
}

struct Ops {
    done: usize,
    limit: Option<usize>,
}

impl Ops {
    fn step(&mut self) -> Result<(), ApplyError> {
        if self.limit.is_some_and(|l| self.done >= l) {
            return Err(ApplyError::Crashed);
        }
        self.done += 1;
        Ok(())
    }
}

/// Writes `bytes` to `root/rel` through `.<name>.render-tmp` in the same directory: create,
/// write, fsync, rename. Three operations for crash tests (see [`write_temp`], then the rename).
fn write_atomic(
    root: &Path,
    rel: &str,
    bytes: &[u8],
    executable: bool,
    ops: &mut Ops,
) -> Result<(), ApplyError> {
    let dir = root.join(parent_of(rel));
    fs::create_dir_all(&dir).map_err(|e| io_error(&dir, "create directory", e))?;
    let budget = ops.limit.map(|l| l.saturating_sub(ops.done));
    write_temp(root, rel, bytes, executable, budget)?;
    ops.done += 2;
    ops.step()?;
    let target = root.join(rel);
    fs::rename(root.join(temp_path(rel)), &target).map_err(|e| io_error(&target, "replace", e))
}

/// Writes the temporary file of `rel`: the first half (operation 1), then the rest and an
/// fsync (operation 2). `budget` is how many of the two may run (crash tests); an interrupted
/// write just stops, as a killed process would, and reports [`ApplyError::Crashed`].
fn write_temp(
    root: &Path,
    rel: &str,
    bytes: &[u8],
    executable: bool,
    budget: Option<usize>,
) -> Result<(), ApplyError> {
    if budget == Some(0) {
        return Err(ApplyError::Crashed);
    }
    let tmp = root.join(temp_path(rel));
    remove_if_present(&tmp)?;
    let mut file = create_file(&tmp, executable).map_err(|e| io_error(&tmp, "create", e))?;
    let half = bytes.len() / 2;
    file.write_all(&bytes[..half])
        .map_err(|e| io_error(&tmp, "write", e))?;
    if budget == Some(1) {
        return Err(ApplyError::Crashed);
    }
    file.write_all(&bytes[half..])
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(&tmp, "write", e))
}

/// Runs `f(0..n)` on up to 16 threads (the work is waiting on fsync, not CPU); results in
/// index order.
fn parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = n.clamp(1, 16);
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            return done;
                        }
                        done.push((i, f(i)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(unix)]
fn create_file(path: &Path, executable: bool) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o777 } else { 0o666 })
        .open(path)
}

#[cfg(not(unix))]
fn create_file(path: &Path, _executable: bool) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn mode_matches(root: &Path, rel: &str, executable: bool) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(root.join(rel)).is_ok_and(|m| (m.permissions().mode() & 0o111 != 0) == executable)
}

#[cfg(not(unix))]
fn mode_matches(_: &Path, _: &str, _: bool) -> bool {
    true
}

#[cfg(unix)]
fn sync_dir(dir: &Path) {
    // Makes the renames durable; a failure here loses nothing already consistent.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(not(unix))]
fn sync_dir(_: &Path) {}

fn remove_if_present(path: &Path) -> Result<(), ApplyError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, "remove", e)),
    }
}

fn io_error(path: &Path, what: &str, err: std::io::Error) -> ApplyError {
    ApplyError::Io(Box::new(Diagnostic::error(
        "render::write",
        "",
        format!("cannot {what} {}: {err}", path.display()),
    )))
}

fn parent_of(rel: &str) -> &str {
    rel.rfind('/').map_or("", |i| &rel[..i])
}

fn temp_path(rel: &str) -> String {
    match rel.rfind('/') {
        Some(i) => format!("{}/.{}{TMP_SUFFIX}", &rel[..i], &rel[i + 1..]),
        None => format!(".{rel}{TMP_SUFFIX}"),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

fn manifest_bytes(m: &Manifest) -> Vec<u8> {
    let mut text = serde_json::to_string_pretty(m).unwrap_or_default();
    text.push('\n');
    text.into_bytes()
}

fn read_manifest(root: &Path) -> Result<(Manifest, Option<Vec<u8>>), Box<Diagnostic>> {
    let path = root.join(MANIFEST_FILE);
    let bytes = match schema::repofile::read(&path, MANIFEST_MAX_BYTES) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            return Ok((
                Manifest {
                    complete: true,
                    version: MANIFEST_VERSION,
                    ..Manifest::default()
                },
                None,
            ));
        }
        Err(e) => {
            return Err(Box::new(
                Diagnostic::error(
                    "render::manifest",
                    "",
                    format!("{MANIFEST_FILE} {e}"),
                )
                .with_help("restore it from git (`git checkout -- .render-manifest.json`); configure reads it only as a regular file"),
            ));
        }
    };
    let broken = |msg: String| {
        Box::new(Diagnostic::error("render::manifest", "", format!("{MANIFEST_FILE}: {msg}"))
            .at(Some(Location::new(&path, 1, 1, 1)))
            .with_help("restore it from git; deleting it makes configure treat every existing output as a file it did not write (conflicts, no pruning)"))
    };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| broken(format!("not a render manifest: {e}")))?;
    if manifest.version != MANIFEST_VERSION {
        return Err(broken(format!(
            "version {} is not supported (expected {MANIFEST_VERSION})",
            manifest.version
        )));
    }
    for path in manifest.files.keys() {
        if !is_safe_relative(path) || is_reserved(path) {
            return Err(broken(format!(
                "lists `{path}`, which is not a path inside the output directory"
            )));
        }
    }
    Ok((manifest, Some(bytes)))
}

/// A `/`-separated relative path with no empty, `.` or `..` component.
fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains(':'))
}

/// The bytes of `root/rel` when it is a regular file, `None` when absent; an error when
/// something else is there.
fn read_regular(root: &Path, rel: &str) -> Result<Option<Vec<u8>>, Box<Diagnostic>> {
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
struct AncestorCheck<'a> {
    root: &'a Path,
    seen: HashMap<String, Result<(), String>>,
}

impl<'a> AncestorCheck<'a> {
    fn new(root: &'a Path) -> Self {
        AncestorCheck {
            root,
            seen: HashMap::new(),
        }
    }

    fn check(&mut self, rel: &str) -> Result<(), Box<Diagnostic>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        assert!(is_secret("kubernetes/flux/cluster-secrets.sops.yaml"));
        assert!(is_secret("talos/talsecret.sops.yaml"));
        assert!(is_secret("x.sops.env"));
        assert!(!is_secret(".sops.yaml"));
        assert!(!is_secret("kubernetes/.sops.yaml"));
        assert!(!is_secret("kubernetes/sops.yaml"));
    }

    #[test]
    fn paths() {
        assert_eq!(temp_path("a/b/c.yaml"), "a/b/.c.yaml.render-tmp");
        assert_eq!(temp_path(".sops.yaml"), "..sops.yaml.render-tmp");
        assert!(is_reserved(&temp_path("a/b")));
        assert_eq!(parent_of("a/b/c"), "a/b");
        assert_eq!(parent_of("c"), "");
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "C:x",
        ] {
            assert!(!is_safe_relative(bad), "{bad}");
        }
        assert!(is_safe_relative(".sops.yaml"));
        assert!(is_safe_relative("kubernetes/apps/x.yaml"));
    }

    #[test]
    fn only_producible_paths_outside_git_may_be_removed() {
        let rendered = Rendered {
            producible: ["kubernetes/a.yaml", ".git/HEAD", "talos/x.yaml"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            ..Rendered::default()
        };
        assert!(may_remove(&rendered, "kubernetes/a.yaml"));
        assert!(may_remove(&rendered, "talos/x.yaml"));
        // Listed as producible by a hostile override, still never.
        assert!(!may_remove(&rendered, ".git/HEAD"));
        for other in [
            "kubernetes/b.yaml",
            "README.md",
            "templates/config/a.j2",
            "../x",
        ] {
            assert!(!may_remove(&rendered, other), "{other}");
        }
    }

    #[test]
    fn the_output_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap();
        let second = lock(dir.path()).unwrap_err();
        assert_eq!(second.code, "render::lock");
        drop(first);
        lock(dir.path()).unwrap();
        // A symlink planted at the lock path is refused, not followed.
        let other = tempfile::tempdir().unwrap();
        std::fs::remove_file(other.path().join(LOCK_FILE)).ok();
        std::os::unix::fs::symlink(dir.path().join("target"), other.path().join(LOCK_FILE))
            .unwrap();
        assert!(lock(other.path()).is_err());
        assert!(!dir.path().join("target").exists());
    }

    #[test]
    fn sha256_matches_a_known_digest() {
        // FIPS 180-2 example "abc".
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
