//! The output lock: one run at a time plans and writes a tree.

use std::fs;
use std::path::Path;

use schema::Diagnostic;

/// The lock file at the output root, held while a run plans and writes (git-ignored).
pub const LOCK_FILE: &str = ".render.lock";

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
