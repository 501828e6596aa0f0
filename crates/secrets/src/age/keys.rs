//! age X25519 keys: generation, Bech32 text forms, key files and sops' key sources.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::bech32;
use crate::error::Error;

const SECRET_HRP: &str = "age-secret-key-";
const PUBLIC_HRP: &str = "age";
const PQ_SECRET_PREFIX: &str = "AGE-SECRET-KEY-PQ-1";
const PQ_PUBLIC_PREFIX: &str = "age1pq1";

/// An age X25519 identity (secret key).
///
/// `Debug` never shows the key; the secret bytes are zeroed when dropped.
#[derive(Clone)]
pub struct Identity {
    secret: StaticSecret,
}

/// An age X25519 recipient (public key). `Display` gives the `age1…` form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Recipient {
    public: [u8; 32],
}

impl Identity {
    /// Generates a new random identity from the operating system's random source.
    pub fn generate() -> Result<Identity, Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        crate::random::fill(bytes.as_mut())?;
        Ok(Identity {
            secret: StaticSecret::from(*bytes),
        })
    }

    /// Parses an `AGE-SECRET-KEY-1…` line.
    pub fn parse(text: &str) -> Result<Identity, Error> {
        let text = text.trim();
        if text.starts_with(PQ_SECRET_PREFIX) {
            return Err(Error::key(
                "post-quantum age identities (`AGE-SECRET-KEY-PQ-1…`) are not supported",
                "generate an X25519 key with `cargo xtask secrets keygen` (or `age-keygen` without `-pq`); Flux before 2.9 cannot use post-quantum keys either",
            ));
        }
        if text.starts_with("AGE-PLUGIN-") {
            return Err(Error::key(
                "age plugin identities are not supported",
                "use an X25519 `AGE-SECRET-KEY-1…` key",
            ));
        }
        let (hrp, data) = bech32::decode(text)
            .map_err(|e| Error::key(format!("malformed age identity: {e}"), "an identity looks like `AGE-SECRET-KEY-1…` (59 upper-case characters after the prefix)"))?;
        let data = Zeroizing::new(data);
        if hrp != SECRET_HRP || !text.starts_with("AGE-SECRET-KEY-1") {
            return Err(Error::key(
                format!("not an age X25519 identity (prefix `{hrp}`)"),
                "an identity starts with `AGE-SECRET-KEY-1`",
            ));
        }
        let bytes: [u8; 32] = data.as_slice().try_into().map_err(|_| {
            Error::key(
                "age identity has the wrong length",
                "an X25519 identity encodes 32 bytes",
            )
        })?;
        Ok(Identity {
            secret: StaticSecret::from(bytes),
        })
    }

    /// The public half.
    pub fn recipient(&self) -> Recipient {
        Recipient {
            public: PublicKey::from(&self.secret).to_bytes(),
        }
    }

    /// The `AGE-SECRET-KEY-1…` text; handle it as a secret.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        let bytes = Zeroizing::new(self.secret.to_bytes());
        Zeroizing::new(bech32::encode(SECRET_HRP, bytes.as_ref()).to_ascii_uppercase())
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({}, secret redacted)", self.recipient())
    }
}

impl Recipient {
    /// Parses an `age1…` X25519 recipient.
    pub fn parse(text: &str) -> Result<Recipient, Error> {
        let text = text.trim();
        if text.starts_with(PQ_PUBLIC_PREFIX) {
            return Err(Error::key(
                "post-quantum age recipients (`age1pq1…`) are not supported",
                "use an X25519 recipient (`age1…`, 62 characters); post-quantum keys also need Flux 2.9 or later",
            ));
        }
        if text.starts_with("ssh-") {
            return Err(Error::key(
                "SSH recipients are not supported",
                "use an age X25519 recipient (`age1…`)",
            ));
        }
        if text.starts_with("age1") && text[4..].contains('1') {
            return Err(Error::key(
                format!("age plugin recipients are not supported: `{text}`"),
                "use an age X25519 recipient (`age1…`)",
            ));
        }
        let (hrp, data) = bech32::decode(text).map_err(|e| {
            Error::key(
                format!("malformed age recipient `{text}`: {e}"),
                "a recipient looks like `age1…` (62 characters)",
            )
        })?;
        if hrp != PUBLIC_HRP || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(Error::key(
                format!("not an age X25519 recipient: `{text}`"),
                "a recipient starts with `age1`",
            ));
        }
        let public: [u8; 32] = data.as_slice().try_into().map_err(|_| {
            Error::key(
                format!("age recipient `{text}` has the wrong length"),
                "an X25519 recipient encodes 32 bytes",
            )
        })?;
        Ok(Recipient { public })
    }

    pub(crate) fn public_key(&self) -> PublicKey {
        PublicKey::from(self.public)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.public
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bech32::encode(PUBLIC_HRP, &self.public))
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({self})")
    }
}

impl std::str::FromStr for Recipient {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Recipient::parse(s)
    }
}

/// The text of an age key file as `age-keygen` writes it:
/// `# created: <RFC 3339>`, `# public key: age1…`, then the secret key line.
pub struct KeyFile {
    text: Zeroizing<String>,
}

impl KeyFile {
    /// Formats a key file for `identity`, stamped with `created` (RFC 3339, e.g. from
    /// [`crate::Clock::rfc3339`]).
    pub fn new(identity: &Identity, created: &str) -> KeyFile {
        let secret = identity.to_secret_string();
        let text = format!(
            "# created: {created}\n# public key: {}\n{}\n",
            identity.recipient(),
            secret.as_str()
        );
        KeyFile {
            text: Zeroizing::new(text),
        }
    }

    /// The file text; it contains the secret key.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyFile(redacted)")
    }
}

/// Creates `path` with mode 0600 and writes `key_file` into it. Refuses to overwrite: the file
/// is opened with `O_CREAT | O_EXCL`, so an existing key is never replaced, even by a race.
pub fn write_new_key_file(path: &Path, key_file: &KeyFile) -> Result<(), Error> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::io(path, "refusing to overwrite an existing key file", e)
        } else {
            Error::io(path, "cannot create key file", e)
        }
    })?;
    file.write_all(key_file.as_str().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(path, "cannot write key file", e))
}

/// Parses identities from key-file text the way sops does: one per line, empty lines and lines
/// starting with `#` skipped, a trailing CR removed.
pub fn parse_identities(text: &str) -> Result<Vec<Identity>, Error> {
    let mut out = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match Identity::parse(line) {
            Ok(identity) => out.push(identity),
            Err(err) => return Err(err.in_line(index + 1)),
        }
    }
    Ok(out)
}

/// Reads identities from one key file. The user names it on purpose, so a symlink is
/// followed; a FIFO, a device or more than [`crate::MAX_KEY_FILE_BYTES`] is refused.
pub fn load_identities_from(path: &Path) -> Result<Vec<Identity>, Error> {
    let bytes = Zeroizing::new(
        schema::repofile::read_following(path, crate::MAX_KEY_FILE_BYTES)
            .map_err(|e| Error::read(path, "cannot read age key file", e))?,
    );
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        Error::read(
            path,
            "cannot read age key file",
            schema::repofile::ReadError::NotUtf8 {
                offset: e.valid_up_to(),
            },
        )
    })?;
    parse_identities(text).map_err(|e| e.in_file(path))
}

/// Loads identities from sops' sources, in sops' order, all of them combined:
/// `SOPS_AGE_KEY` (key text), `SOPS_AGE_KEY_FILE` (a path), and the default
/// `$XDG_CONFIG_HOME/sops/age/keys.txt` (`~/.config/sops/age/keys.txt`).
/// `SOPS_AGE_KEY_CMD` is not supported (it would run a program).
///
/// A missing default file is not an error; an unreadable `SOPS_AGE_KEY_FILE` is.
pub fn load_identities() -> Result<Vec<Identity>, Error> {
    let mut out = Vec::new();
    if let Some(text) = std::env::var_os("SOPS_AGE_KEY") {
        let text = Zeroizing::new(text.to_string_lossy().into_owned());
        out.extend(parse_identities(&text).map_err(|e| e.in_source("SOPS_AGE_KEY"))?);
    }
    if let Some(path) = std::env::var_os("SOPS_AGE_KEY_FILE") {
        out.extend(load_identities_from(Path::new(&path))?);
    }
    if let Some(path) = default_key_file().filter(|p| p.is_file()) {
        out.extend(load_identities_from(&path)?);
    }
    Ok(out)
}

fn default_key_file() -> Option<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(config.join("sops").join("age").join("keys.txt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_roundtrips_through_text() {
        let id = Identity::generate().unwrap();
        let text = id.to_secret_string();
        assert!(text.starts_with("AGE-SECRET-KEY-1"));
        assert_eq!(text.len(), 74);
        let back = Identity::parse(&text).unwrap();
        assert_eq!(back.recipient(), id.recipient());
        let r = id.recipient().to_string();
        assert!(r.starts_with("age1") && r.len() == 62, "{r}");
        assert_eq!(Recipient::parse(&r).unwrap(), id.recipient());
        assert!(!format!("{id:?}").contains("AGE-SECRET"));
    }

    #[test]
    fn key_file_lines_skip_comments_and_cr() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        let text = format!(
            "# created: x\r\n\r\n{}\r\n# c\n{}\n",
            a.to_secret_string().as_str(),
            b.to_secret_string().as_str()
        );
        let ids = parse_identities(&text).unwrap();
        assert_eq!(
            ids.iter().map(Identity::recipient).collect::<Vec<_>>(),
            vec![a.recipient(), b.recipient()]
        );
    }

    #[test]
    fn post_quantum_keys_are_refused_with_a_message() {
        // A throwaway post-quantum identity, kept with the other test fixtures.
        let pq = include_str!("../../tests/fixtures/pq-identity.txt").trim();
        let err = Identity::parse(pq).unwrap_err();
        assert!(err.to_string().contains("post-quantum"), "{err}");
        let err = Recipient::parse("age1pq1ehusfwsvrente8p6gafr4jemv").unwrap_err();
        assert!(err.to_string().contains("post-quantum"), "{err}");
    }

    #[test]
    fn bad_line_reports_its_number() {
        let err = parse_identities("# c\n\nnot-a-key\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }
}
