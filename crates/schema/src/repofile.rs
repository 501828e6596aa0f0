//! The one way to read a file that came from the repository.
//!
//! Everything in a cluster repository may come from a pull request, so a path under it is
//! untrusted: it may be a symlink to `age.key` or `/proc/self/environ`, a FIFO that never ends, a
//! device that never stops (`/dev/zero`), or a regular file far larger than any real input. Every
//! crate reads repository files through [`read`] (or [`read_under`] for a path relative to a
//! root), which:
//!
//! - opens without following a symlink in the last component (`O_NOFOLLOW`), and with
//!   [`read_under`] refuses a symlink in any component below the root;
//! - opens non-blocking, so a FIFO cannot hang the open, then `fstat`s the open descriptor and
//!   refuses anything that is not a regular file;
//! - reads at most `max` bytes, whatever the file claims its size is.
//!
//! Key files the user points at on purpose (`SOPS_AGE_KEY_FILE`) may be symlinks:
//! [`read_following`] follows them but keeps the other two rules.

use std::fmt;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Why a repository file was not read.
#[derive(Debug)]
pub enum ReadError {
    NotFound,
    /// The path (or, with [`read_under`], a directory on the way) is a symlink.
    Symlink(PathBuf),
    /// A FIFO, socket, device or directory.
    NotRegular(&'static str),
    TooLarge {
        limit: u64,
    },
    NotUtf8 {
        offset: usize,
    },
    Io(io::Error),
}

impl ReadError {
    /// A short stable name for diagnostic codes: `symlink`, `not_regular`, `too_large`, ….
    pub fn code(&self) -> &'static str {
        match self {
            ReadError::NotFound => "not_found",
            ReadError::Symlink(_) => "symlink",
            ReadError::NotRegular(_) => "not_regular",
            ReadError::TooLarge { .. } => "too_large",
            ReadError::NotUtf8 { .. } => "encoding",
            ReadError::Io(_) => "read",
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::NotFound)
    }

    /// What to do about it, for a diagnostic's help line.
    pub fn help(&self) -> &'static str {
        match self {
            ReadError::Symlink(_) => {
                "files in the repository are never read through symlinks (a committed symlink could point at a key file); replace it with the file itself"
            }
            ReadError::NotRegular(_) => {
                "only regular files are read; replace it with a regular file or remove it"
            }
            ReadError::TooLarge { .. } => {
                "this is far larger than any valid input; check that the right file was given"
            }
            ReadError::NotUtf8 { .. } => "save the file as UTF-8",
            ReadError::NotFound | ReadError::Io(_) => "check the path and its permissions",
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotFound => f.write_str("no such file"),
            ReadError::Symlink(p) if p.as_os_str().is_empty() => {
                f.write_str("is a symlink, which is not followed")
            }
            ReadError::Symlink(p) => {
                write!(f, "{} is a symlink, which is not followed", p.display())
            }
            ReadError::NotRegular(kind) => write!(f, "is a {kind}, not a regular file"),
            ReadError::TooLarge { limit } => {
                write!(f, "is larger than the {limit} bytes allowed")
            }
            ReadError::NotUtf8 { offset } => {
                write!(f, "is not UTF-8 (invalid byte at offset {offset})")
            }
            ReadError::Io(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        if e.kind() == io::ErrorKind::NotFound {
            ReadError::NotFound
        } else {
            ReadError::Io(e)
        }
    }
}

/// Reads a regular file of at most `max` bytes; a symlink in the last component is refused.
pub fn read(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    open_read(path, max, false)
}

/// Like [`read`], following symlinks: only for files the user names on purpose (key files).
pub fn read_following(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    open_read(path, max, true)
}

/// Reads `rel` below `root`; a symlink in any component of `rel` is refused, and `rel` may not
/// leave `root` (`..` or an absolute path).
pub fn read_under(root: &Path, rel: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    check_no_symlink_under(root, rel)?;
    read(&root.join(rel), max)
}

/// Refuses a `rel` that leaves `root` or crosses a symlink in a directory below it. The last
/// component is checked by the `O_NOFOLLOW` open itself.
pub fn check_no_symlink_under(root: &Path, rel: &Path) -> Result<(), ReadError> {
    let mut at = root.to_path_buf();
    let mut components = rel.components().peekable();
    while let Some(c) = components.next() {
        match c {
            Component::Normal(name) => at.push(name),
            Component::CurDir => continue,
            _ => {
                return Err(ReadError::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "path leaves the repository",
                )));
            }
        }
        if components.peek().is_none() {
            break;
        }
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ReadError::Symlink(
                    at.strip_prefix(root).unwrap_or(&at).into(),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// [`read`] as UTF-8 text.
pub fn read_text(path: &Path, max: u64) -> Result<String, ReadError> {
    into_text(read(path, max)?)
}

/// [`read_under`] as UTF-8 text.
pub fn read_text_under(root: &Path, rel: &Path, max: u64) -> Result<String, ReadError> {
    into_text(read_under(root, rel, max)?)
}

/// Bytes as UTF-8 text, naming the offset of the first invalid byte.
pub fn into_text(bytes: Vec<u8>) -> Result<String, ReadError> {
    String::from_utf8(bytes).map_err(|e| ReadError::NotUtf8 {
        offset: e.utf8_error().valid_up_to(),
    })
}

/// What a path is, without following a symlink: `None` when it does not exist.
pub fn kind_of(path: &Path) -> Option<&'static str> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some(kind_name(&meta.file_type()))
}

fn kind_name(t: &std::fs::FileType) -> &'static str {
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "file"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() || t.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

/// Open flags for a file the tool creates or opens in the repository: a symlink or FIFO planted at
/// the path is refused (`ELOOP`) or cannot block the open.
pub const NOFOLLOW_NONBLOCK: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;

fn open_read(path: &Path, max: u64, follow: bool) -> Result<Vec<u8>, ReadError> {
    // Non-blocking so that opening a FIFO returns at once; regular files ignore the flag.
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(f) => f,
        // O_NOFOLLOW on a symlink fails with ELOOP.
        Err(e) if !follow && e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(ReadError::Symlink(PathBuf::new()));
        }
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular(kind_name(&meta.file_type())));
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge { limit: max });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // One byte more than allowed tells a file that grew after fstat from one that fits.
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge { limit: max });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "repofile-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_a_regular_file_within_the_cap() {
        let d = tmp();
        std::fs::write(d.join("a"), "hello").unwrap();
        assert_eq!(read(&d.join("a"), 5).unwrap(), b"hello");
        assert!(matches!(
            read(&d.join("a"), 4),
            Err(ReadError::TooLarge { limit: 4 })
        ));
        assert!(read(&d.join("missing"), 4).unwrap_err().is_not_found());
    }

    #[test]
    fn refuses_symlinks_in_the_last_component_and_below_the_root() {
        let d = tmp();
        std::fs::write(d.join("secret"), "AGE-SECRET-KEY-1").unwrap();
        std::fs::create_dir(d.join("real")).unwrap();
        std::fs::write(d.join("real/f"), "ok").unwrap();
        symlink(d.join("secret"), d.join("link")).unwrap();
        symlink(d.join("real"), d.join("dirlink")).unwrap();
        assert!(matches!(
            read(&d.join("link"), 100),
            Err(ReadError::Symlink(_))
        ));
        assert_eq!(
            read_following(&d.join("link"), 100).unwrap(),
            b"AGE-SECRET-KEY-1"
        );
        assert!(matches!(
            read_under(&d, Path::new("dirlink/f"), 100),
            Err(ReadError::Symlink(p)) if p == Path::new("dirlink")
        ));
        assert_eq!(read_under(&d, Path::new("real/f"), 100).unwrap(), b"ok");
        assert!(read_under(&d, Path::new("../x"), 100).is_err());
    }

    #[test]
    fn refuses_devices_and_fifos_without_blocking() {
        assert!(matches!(
            read(Path::new("/dev/zero"), 1 << 20),
            Err(ReadError::NotRegular("device"))
        ));
        let d = tmp();
        let fifo = d.join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if status.is_ok_and(|s| s.success()) {
            // Without O_NONBLOCK this open would wait for a writer forever.
            assert!(matches!(
                read(&fifo, 100),
                Err(ReadError::NotRegular("FIFO"))
            ));
        }
        assert!(matches!(
            read(&d, 100),
            Err(ReadError::NotRegular("directory")) | Err(ReadError::Io(_))
        ));
    }
}
