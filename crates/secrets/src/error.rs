//! The crate's error type: one struct with a kind, a message for people, an optional location
//! (file, line, dotted path) and an optional hint.

use std::fmt;
use std::path::Path;

/// What went wrong, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing a file failed.
    Io,
    /// An age key or key file is malformed or of an unsupported type.
    Key,
    /// The YAML text could not be parsed, or uses something sops cannot represent.
    Yaml,
    /// `.sops.yaml` is malformed or has no rule for the file.
    Config,
    /// The `sops` metadata block is missing or malformed.
    Metadata,
    /// None of the identities opens any of the file's `enc` blocks.
    NoIdentity,
    /// A value failed authentication: it was changed, moved to another key, or corrupted.
    Tampered,
    /// The MAC over all values does not match.
    MacMismatch,
    /// The plaintext already carries a `sops` key.
    AlreadyEncrypted,
    /// A value or key uses a form sops does not support (e.g. a non-string key).
    Unsupported,
    /// The age layer is malformed.
    AgeFormat,
    /// A cryptographic primitive or the random source failed.
    Crypto,
}

/// An error with a message for people: `location: message`, then `help: …` when there is a hint.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    help: Option<String>,
    location: Vec<String>,
    value_path: Option<String>,
    source: Option<std::io::Error>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            help: None,
            location: Vec::new(),
            value_path: None,
            source: None,
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Error {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn key(message: impl Into<String>, help: impl Into<String>) -> Error {
        Error::new(ErrorKind::Key, message).with_help(help)
    }

    pub(crate) fn io(path: &Path, what: &str, source: std::io::Error) -> Error {
        let mut err = Error::new(ErrorKind::Io, format!("{what}: {source}"));
        err.location.push(path.display().to_string());
        err.source = Some(source);
        err
    }

    /// A file that was not read (symlink, FIFO, device, too large, not UTF-8, …), with
    /// [`schema::repofile::ReadError::help`] as the hint.
    pub(crate) fn read(path: &Path, what: &str, e: schema::repofile::ReadError) -> Error {
        let help = e.help();
        let mut err = Error::new(ErrorKind::Io, format!("{what}: {e}")).with_help(help);
        err.location.push(path.display().to_string());
        err
    }

    pub(crate) fn crypto(message: &str) -> Error {
        Error::new(ErrorKind::Crypto, message)
    }

    pub(crate) fn age_format(message: &str) -> Error {
        Error::new(ErrorKind::AgeFormat, message)
    }

    pub(crate) fn yaml(line: usize, col: usize, message: impl Into<String>) -> Error {
        let mut err = Error::new(ErrorKind::Yaml, message);
        err.location.push(format!("{line}:{col}"));
        err
    }

    /// An error about the value at the dotted `path` (e.g. `stringData.password`).
    pub(crate) fn at_value(kind: ErrorKind, path: &str, message: impl Into<String>) -> Error {
        let mut err = Error::new(kind, message);
        err.value_path = Some(path.to_owned());
        err
    }

    pub(crate) fn in_line(mut self, line: usize) -> Error {
        self.location.insert(0, format!("line {line}"));
        self
    }

    pub(crate) fn in_source(mut self, source: &str) -> Error {
        self.location.insert(0, source.to_owned());
        self
    }

    /// Prefixes the location with a file name (what a caller reading a file adds).
    pub fn in_file(mut self, path: &Path) -> Error {
        let shown = path.display().to_string();
        if self.location.first() != Some(&shown) {
            match self.location.first_mut() {
                // `12:3` becomes `file:12:3`, as editors expect.
                Some(first) if first.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
                    *first = format!("{shown}:{first}")
                }
                _ => self.location.insert(0, shown),
            }
        }
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The dotted path of the value concerned, if the error is about one value.
    pub fn value_path(&self) -> Option<&str> {
        self.value_path.as_deref()
    }

    /// The message without location or hint.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What to do about it, when known.
    pub fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.location {
            write!(f, "{part}: ")?;
        }
        if let Some(path) = &self.value_path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    /// None: the message already ends with the OS error, and an error chain printer (anyhow's
    /// `{:#}`) would otherwise say it twice ("File exists (os error 17): File exists (os error
    /// 17)"). [`Error::io_error_kind`] keeps it available to code.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        None
    }
}

impl Error {
    /// The kind of the I/O error behind an `Io` error, if any.
    pub fn io_error_kind(&self) -> Option<std::io::ErrorKind> {
        self.source.as_ref().map(std::io::Error::kind)
    }
}
