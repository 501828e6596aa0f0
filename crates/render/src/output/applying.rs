//! Applying a plan: journal, atomic writes through temporary files, removals, final manifest.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use schema::Diagnostic;

use super::manifest::{MANIFEST_FILE, manifest_bytes};
use super::paths::{parent_of, temp_path};
use super::planning::{Action, Plan, Planned};

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
