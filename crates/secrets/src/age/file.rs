//! The age v1 file format for the small payloads sops wraps (a 32-byte data key): header with
//! X25519 stanzas and HMAC-SHA256, STREAM payload (ChaCha20-Poly1305, 64 KiB chunks), ASCII armor.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::keys::{Identity, Recipient};
use crate::error::Error;

const INTRO: &str = "age-encryption.org/v1\n";
const X25519_LABEL: &[u8] = b"age-encryption.org/v1/X25519";
const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
const ARMOR_END: &str = "-----END AGE ENCRYPTED FILE-----";
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // Expanding 32 bytes from SHA-256 HKDF cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, out.as_mut());
    out
}

fn aead(key: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(Key::from_slice(key))
}

fn header_mac(file_key: &[u8], header_up_to_dashes: &[u8]) -> [u8; 32] {
    let key = hkdf(&[], file_key, b"header");
    // HMAC accepts keys of any length.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref()).expect("HMAC takes any key length");
    mac.update(header_up_to_dashes);
    mac.finalize().into_bytes().into()
}

/// Wraps the body text of a stanza at 64 columns; the last line is always shorter than 64.
fn push_wrapped(out: &mut String, b64: &str) {
    let mut rest = b64;
    loop {
        let n = rest.len().min(64);
        out.push_str(&rest[..n]);
        out.push('\n');
        rest = &rest[n..];
        if n < 64 {
            break;
        }
    }
}

/// Encrypts `plaintext` to one recipient and returns the armored file, as sops stores it in
/// `enc` (64-column base64, `\n` line ends, trailing newline).
pub(crate) fn encrypt_armored(plaintext: &[u8], recipient: &Recipient) -> Result<String, Error> {
    let mut file_key = Zeroizing::new([0u8; 16]);
    crate::random::fill(file_key.as_mut())?;
    let mut ephemeral_bytes = Zeroizing::new([0u8; 32]);
    crate::random::fill(ephemeral_bytes.as_mut())?;
    let ephemeral = StaticSecret::from(*ephemeral_bytes);
    let ephemeral_share = PublicKey::from(&ephemeral).to_bytes();
    let shared = ephemeral.diffie_hellman(&recipient.public_key());
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(&ephemeral_share);
    salt[32..].copy_from_slice(recipient.bytes());
    let wrap_key = hkdf(&salt, shared.as_bytes(), X25519_LABEL);
    let body = aead(&wrap_key)
        .encrypt(Nonce::from_slice(&[0u8; 12]), file_key.as_ref())
        .map_err(|_| Error::crypto("cannot wrap the age file key"))?;

    let mut header = String::from(INTRO);
    header.push_str("-> X25519 ");
    header.push_str(&STANDARD_NO_PAD.encode(ephemeral_share));
    header.push('\n');
    push_wrapped(&mut header, &STANDARD_NO_PAD.encode(&body));
    header.push_str("---");
    let mac = header_mac(file_key.as_ref(), header.as_bytes());
    header.push(' ');
    header.push_str(&STANDARD_NO_PAD.encode(mac));
    header.push('\n');

    let mut binary = header.into_bytes();
    let mut nonce = [0u8; 16];
    crate::random::fill(&mut nonce)?;
    binary.extend_from_slice(&nonce);
    let payload_key = hkdf(&nonce, file_key.as_ref(), b"payload");
    let cipher = aead(&payload_key);
    let chunks: Vec<&[u8]> = if plaintext.is_empty() {
        vec![&[][..]]
    } else {
        plaintext.chunks(CHUNK).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let sealed = cipher
            .encrypt(&stream_nonce(i as u64, last), *chunk)
            .map_err(|_| Error::crypto("cannot encrypt the age payload"))?;
        binary.extend_from_slice(&sealed);
    }
    Ok(armor(&binary))
}

fn stream_nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    *Nonce::from_slice(&n)
}

fn armor(binary: &[u8]) -> String {
    let b64 = STANDARD.encode(binary);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 80);
    out.push_str(ARMOR_BEGIN);
    out.push('\n');
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(ARMOR_END);
    out.push('\n');
    out
}

fn dearmor(text: &str) -> Result<Vec<u8>, Error> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix(ARMOR_BEGIN)
        .and_then(|t| t.strip_suffix(ARMOR_END))
        .ok_or_else(|| {
            Error::age_format(
                "the `enc` value is not an armored age file (`-----BEGIN AGE ENCRYPTED FILE-----`)",
            )
        })?;
    let b64: String = inner.split_whitespace().collect();
    STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| Error::age_format("invalid base64 inside the age armor"))
}

struct Stanza<'a> {
    kind: &'a str,
    args: Vec<&'a str>,
    body: Vec<u8>,
}

/// A parsed age header: the stanzas, the bytes the MAC covers, the MAC, and the payload.
type Header<'a> = (Vec<Stanza<'a>>, &'a [u8], Vec<u8>, &'a [u8]);

/// Parses the header.
fn parse_header(binary: &[u8]) -> Result<Header<'_>, Error> {
    let bad = |what: &str| Error::age_format(&format!("malformed age header: {what}"));
    if !binary.starts_with(INTRO.as_bytes()) {
        return Err(bad("missing `age-encryption.org/v1`"));
    }
    let mut pos = INTRO.len();
    let mut stanzas = Vec::new();
    let next_line = |pos: usize| -> Result<(&[u8], usize), Error> {
        let end = binary[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("unterminated line"))?;
        Ok((&binary[pos..pos + end], pos + end + 1))
    };
    loop {
        let (line, after) = next_line(pos)?;
        let line = std::str::from_utf8(line).map_err(|_| bad("non-UTF-8 header line"))?;
        if let Some(mac) = line.strip_prefix("--- ") {
            let mac = STANDARD_NO_PAD
                .decode(mac)
                .map_err(|_| bad("invalid MAC encoding"))?;
            let covered = &binary[..pos + 3];
            return Ok((stanzas, covered, mac, &binary[after..]));
        }
        let rest = line
            .strip_prefix("-> ")
            .ok_or_else(|| bad("expected a stanza or `---`"))?;
        let mut words = rest.split(' ');
        let kind = words
            .next()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| bad("empty stanza type"))?;
        let args: Vec<&str> = words.collect();
        pos = after;
        let mut body = String::new();
        loop {
            let (line, after) = next_line(pos)?;
            pos = after;
            let line = std::str::from_utf8(line).map_err(|_| bad("non-UTF-8 stanza body"))?;
            if line.len() > 64 {
                return Err(bad("stanza body line longer than 64 columns"));
            }
            body.push_str(line);
            if line.len() < 64 {
                break;
            }
        }
        let body = STANDARD_NO_PAD
            .decode(body.as_bytes())
            .map_err(|_| bad("invalid stanza body encoding"))?;
        stanzas.push(Stanza { kind, args, body });
    }
}

/// Outcome of trying identities on one armored file.
pub(crate) enum Unwrapped {
    Plaintext(Zeroizing<Vec<u8>>),
    /// No identity matched; the stanza types found are listed.
    NoMatch(Vec<String>),
}

/// Decrypts an armored age file with the first identity that opens one of its X25519 stanzas.
pub(crate) fn decrypt_armored(text: &str, identities: &[Identity]) -> Result<Unwrapped, Error> {
    let binary = dearmor(text)?;
    let (stanzas, covered, mac, payload) = parse_header(&binary)?;
    let mut file_key: Option<Zeroizing<Vec<u8>>> = None;
    'outer: for stanza in &stanzas {
        if stanza.kind != "X25519" {
            continue;
        }
        let [share] = stanza.args.as_slice() else {
            return Err(Error::age_format("malformed X25519 stanza"));
        };
        let share = STANDARD_NO_PAD
            .decode(share)
            .map_err(|_| Error::age_format("malformed X25519 share"))?;
        let share: [u8; 32] = share
            .try_into()
            .map_err(|_| Error::age_format("X25519 share is not 32 bytes"))?;
        if stanza.body.len() != 32 {
            return Err(Error::age_format("X25519 stanza body is not 32 bytes"));
        }
        for identity in identities {
            let shared = identity.secret().diffie_hellman(&PublicKey::from(share));
            if shared.as_bytes().iter().all(|&b| b == 0) {
                continue;
            }
            let mut salt = [0u8; 64];
            salt[..32].copy_from_slice(&share);
            salt[32..].copy_from_slice(identity.recipient().bytes());
            let wrap_key = hkdf(&salt, shared.as_bytes(), X25519_LABEL);
            if let Ok(key) =
                aead(&wrap_key).decrypt(Nonce::from_slice(&[0u8; 12]), stanza.body.as_slice())
            {
                file_key = Some(Zeroizing::new(key));
                break 'outer;
            }
        }
    }
    let Some(file_key) = file_key else {
        return Ok(Unwrapped::NoMatch(
            stanzas.iter().map(|s| s.kind.to_owned()).collect(),
        ));
    };
    if file_key.len() != 16 {
        return Err(Error::age_format("age file key is not 16 bytes"));
    }
    let expected = header_mac(&file_key, covered);
    if !bool::from(subtle_eq(&expected, &mac)) {
        return Err(Error::age_format(
            "age header MAC mismatch: the `enc` block was modified",
        ));
    }
    if payload.len() < 16 + TAG {
        return Err(Error::age_format("age payload is truncated"));
    }
    let (nonce, body) = payload.split_at(16);
    let payload_key = hkdf(nonce, &file_key, b"payload");
    let cipher = aead(&payload_key);
    let mut out = Zeroizing::new(Vec::with_capacity(body.len()));
    let chunks: Vec<&[u8]> = body.chunks(CHUNK + TAG).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let plain = cipher
            .decrypt(
                &stream_nonce(i as u64, last),
                Payload {
                    msg: chunk,
                    aad: &[],
                },
            )
            .map_err(|_| Error::age_format("age payload authentication failed"))?;
        if last && plain.is_empty() && i > 0 {
            return Err(Error::age_format("age payload has an empty final chunk"));
        }
        out.extend_from_slice(&plain);
    }
    Ok(Unwrapped::Plaintext(out))
}

fn subtle_eq(a: &[u8], b: &[u8]) -> Choice {
    if a.len() != b.len() {
        return Choice(false);
    }
    Choice(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0)
}

struct Choice(bool);
impl From<Choice> for bool {
    fn from(c: Choice) -> bool {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_wrong_identity() {
        let id = Identity::generate().unwrap();
        let other = Identity::generate().unwrap();
        let armored = encrypt_armored(&[7u8; 32], &id.recipient()).unwrap();
        assert!(
            armored.starts_with(ARMOR_BEGIN)
                && armored.ends_with("-----END AGE ENCRYPTED FILE-----\n")
        );
        assert!(
            armored
                .lines()
                .all(|l| l.len() <= 64 || l.starts_with("-----"))
        );
        match decrypt_armored(&armored, &[other.clone(), id]).unwrap() {
            Unwrapped::Plaintext(p) => assert_eq!(p.as_slice(), &[7u8; 32]),
            Unwrapped::NoMatch(_) => panic!("no match"),
        }
        assert!(matches!(
            decrypt_armored(&armored, &[other]).unwrap(),
            Unwrapped::NoMatch(_)
        ));
    }

    #[test]
    fn tampered_header_is_rejected() {
        let id = Identity::generate().unwrap();
        let armored = encrypt_armored(b"data", &id.recipient()).unwrap();
        let mut binary = dearmor(&armored).unwrap();
        // Flip a bit in the MAC line's base64 area (the line after the stanza body).
        let dash = binary.windows(4).position(|w| w == b"--- ").unwrap();
        binary[dash + 5] ^= 0x01;
        let res = decrypt_armored(&armor(&binary), &[id]);
        assert!(res.is_err());
    }
}
