//! The one way to replace a file in a directory that may hold planted entries.
//!
//! A repository (or a cache directory) may contain anything a pull request put there, including
//! a symlink at the path a temporary file would get. [`write_atomically`] therefore:
//!
//! - refuses to replace a target that is a symlink or not a regular file;
//! - creates its temporary file in the target's directory with `O_CREAT | O_EXCL` (a planted
//!   file or symlink at that name makes the open fail instead of being written through), under
//!   an unpredictable name, with the mode asked for (0600 for anything secret);
//! - writes and syncs it, then renames it over the target, so readers see the old or the new
//!   bytes, never a mix; on any failure the temporary file is removed.

use std::fmt::Write as _;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Replaces (or creates) `path` with `bytes`, through an exclusive temporary file of `mode` in
/// the same directory. A `path` that is a symlink, a directory or a special file is refused.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symlink, which is never written through",
            ));
        }
        Ok(m) if !m.is_file() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is not a regular file",
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "has no file name"))?
        .to_string_lossy();
    for _ in 0..16 {
        let tmp = dir.join(format!(".{name}.{}.tmp", unpredictable_hex()));
        let mut file = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&tmp, path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        return written;
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not create a temporary file next to it (16 names were taken)",
    ))
}

/// Replaces (or creates) the file `name` in the folder `dir` below `root` with `bytes`, like
/// [`write_atomically`], for a cache that only this tool writes but anyone may have planted
/// entries in. `root` is opened as given (it is the caller's choice); from there every step goes
/// through directory handles (`mkdirat`, `openat`, `renameat`, `unlinkat`): each folder of `dir`
/// is created if missing and opened with `O_NOFOLLOW`, so a symlinked folder is refused, and
/// swapping one for a symlink afterwards cannot redirect the write (resolving the path again for
/// each step could). A symlink at `name` is removed, never followed; any other non-regular entry
/// there is refused.
pub fn replace_under(
    root: &Path,
    dir: &Path,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> io::Result<()> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    let folder_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut handle = rustix::fs::open(root, folder_flags, Mode::empty())?;
    for c in dir.components() {
        let std::path::Component::Normal(c) = c else {
            if c == std::path::Component::CurDir {
                continue;
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "folder leaves the root",
            ));
        };
        match rustix::fs::mkdirat(&handle, c, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        handle = rustix::fs::openat(&handle, c, folder_flags | OFlags::NOFOLLOW, Mode::empty())?;
    }
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is not a plain file name",
        ));
    }
    match rustix::fs::statat(&handle, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {}
            FileType::Symlink => rustix::fs::unlinkat(&handle, name, AtFlags::empty())?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "is not a regular file",
                ));
            }
        },
        Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    for _ in 0..16 {
        let tmp = format!(".{name}.{}.tmp", unpredictable_hex());
        let fd = match rustix::fs::openat(
            &handle,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut file = fs::File::from(fd);
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| {
                rustix::fs::renameat(&handle, tmp.as_str(), &handle, name).map_err(Into::into)
            });
        if written.is_err() {
            let _ = rustix::fs::unlinkat(&handle, tmp.as_str(), AtFlags::empty());
        }
        return written;
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not create a temporary file next to it (16 names were taken)",
    ))
}

/// 128 bits nobody outside this process can predict: std's `RandomState` is keyed from the
/// operating system's random source.
fn unpredictable_hex() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut out = String::with_capacity(32);
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(i);
        h.write_u32(std::process::id());
        let _ = write!(out, "{:016x}", h.finish());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::PathBuf;

    fn tmp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "writefile-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn replaces_a_file_with_the_mode_asked_for_and_leaves_nothing_else() {
        let d = tmp();
        let f = d.join("s.sops.yaml");
        fs::write(&f, "old").unwrap();
        write_atomically(&f, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        write_atomically(&d.join("fresh"), b"x", 0o644).unwrap();
        assert_eq!(fs::read(d.join("fresh")).unwrap(), b"x");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn never_writes_through_a_symlink() {
        let d = tmp();
        let victim = d.join("victim");
        fs::write(&victim, "keep").unwrap();
        // The target itself is a symlink: refused, the file it points to is untouched.
        symlink(&victim, d.join("link")).unwrap();
        let err = write_atomically(&d.join("link"), b"evil", 0o600).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(write_atomically(&d, b"x", 0o600).is_err());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replace_under_writes_through_the_folders_it_opened_and_nowhere_else() {
        let d = tmp();
        let cache = d.join("cache");
        let outside = d.join("outside");
        fs::create_dir_all(&d).unwrap();
        fs::create_dir_all(&outside).unwrap();
        let replace_in_dir = |dir: &Path, name: &str, bytes: &[u8], mode: u32| {
            let rel = dir.strip_prefix(&d).unwrap();
            replace_under(&d, rel, name, bytes, mode)
        };
        // Missing folders are created.
        replace_in_dir(&cache, "a.digest", b"one", 0o644).unwrap();
        replace_in_dir(&cache, "a.digest", b"two", 0o644).unwrap();
        assert_eq!(fs::read(cache.join("a.digest")).unwrap(), b"two");
        // A symlink at the name is replaced by the file; its target is not touched.
        fs::write(outside.join("victim"), "keep").unwrap();
        symlink(outside.join("victim"), cache.join("b.digest")).unwrap();
        replace_in_dir(&cache, "b.digest", b"new", 0o644).unwrap();
        assert!(
            fs::symlink_metadata(cache.join("b.digest"))
                .unwrap()
                .is_file()
        );
        assert_eq!(fs::read(outside.join("victim")).unwrap(), b"keep");
        // A folder on the way a symlink: refused, nothing written or created where it points.
        let linked = d.join("linked");
        symlink(&outside, &linked).unwrap();
        assert!(replace_in_dir(&linked, "c.digest", b"x", 0o644).is_err());
        assert!(replace_in_dir(&linked.join("sub"), "c.digest", b"x", 0o644).is_err());
        assert!(!outside.join("c.digest").exists() && !outside.join("sub").exists());
        assert!(replace_under(&d, Path::new("../x"), "c.digest", b"x", 0o644).is_err());
        // A directory (or any special file) at the name is refused; names never leave the folder.
        fs::create_dir(cache.join("d.digest")).unwrap();
        assert!(replace_in_dir(&cache, "d.digest", b"x", 0o644).is_err());
        assert!(replace_in_dir(&cache, "../escape", b"x", 0o644).is_err());
        assert!(replace_in_dir(&cache, "..", b"x", 0o644).is_err());
        let mut left: Vec<_> = fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["a.digest", "b.digest", "d.digest"]);
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    }
}
