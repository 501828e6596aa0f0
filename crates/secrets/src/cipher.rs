//! SOPS value encryption: AES-256-GCM with a 32-byte IV, written as
//! `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` (standard padded base64).

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U32;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::error::Error;

type Gcm = AesGcm<Aes256, U32>;

/// The 32-byte data key of one file.
#[derive(Clone)]
pub(crate) struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    pub(crate) fn generate() -> Result<DataKey, Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        crate::random::fill(key.as_mut())?;
        Ok(DataKey(key))
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<DataKey> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(DataKey(Zeroizing::new(arr)))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> Gcm {
        Gcm::new(GenericArray::from_slice(self.0.as_ref()))
    }
}

impl PartialEq for DataKey {
    fn eq(&self, other: &DataKey) -> bool {
        self.0.as_ref() == other.0.as_ref()
    }
}

/// The parts of an `ENC[…]` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sealed {
    pub data: Vec<u8>,
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
    pub kind: String,
}

impl Sealed {
    /// Parses with sops' rule `^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]` (not anchored at the end).
    pub(crate) fn parse(text: &str) -> Option<Sealed> {
        let rest = text.strip_prefix("ENC[AES256_GCM,data:")?;
        // The groups are greedy in sops' regex; base64 never contains `,`, so split on the markers.
        let (data, rest) = rest.split_once(",iv:")?;
        let (iv, rest) = rest.split_once(",tag:")?;
        let (tag, rest) = rest.split_once(",type:")?;
        let close = rest.rfind(']')?;
        let kind = &rest[..close];
        if data.is_empty() || iv.is_empty() || tag.is_empty() || kind.is_empty() {
            return None;
        }
        Some(Sealed {
            data: STANDARD.decode(data).ok()?,
            iv: STANDARD.decode(iv).ok()?,
            tag: STANDARD.decode(tag).ok()?,
            kind: kind.to_owned(),
        })
    }

    pub(crate) fn format(&self) -> String {
        format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]",
            STANDARD.encode(&self.data),
            STANDARD.encode(&self.iv),
            STANDARD.encode(&self.tag),
            self.kind
        )
    }
}

/// Encrypts `plaintext` with a given 32-byte IV and additional data.
pub(crate) fn seal(
    key: &DataKey,
    iv: &[u8; 32],
    aad: &[u8],
    plaintext: &[u8],
    kind: &str,
) -> Result<Sealed, Error> {
    let mut buf = plaintext.to_vec();
    let tag = key
        .cipher()
        .encrypt_in_place_detached(GenericArray::from_slice(iv), aad, &mut buf)
        .map_err(|_| Error::crypto("AES-GCM encryption failed"))?;
    Ok(Sealed {
        data: buf,
        iv: iv.to_vec(),
        tag: tag.to_vec(),
        kind: kind.to_owned(),
    })
}

pub(crate) fn random_iv() -> Result<[u8; 32], Error> {
    let mut iv = [0u8; 32];
    crate::random::fill(&mut iv)?;
    Ok(iv)
}

/// Decrypts; `None` when authentication fails. sops accepts any IV length on decryption; this
/// implementation supports the 32 bytes every sops version writes.
pub(crate) fn open(key: &DataKey, sealed: &Sealed, aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.iv.len() != 32 || sealed.tag.len() != 16 {
        return None;
    }
    let mut buf = Zeroizing::new(sealed.data.clone());
    key.cipher()
        .decrypt_in_place_detached(
            GenericArray::from_slice(&sealed.iv),
            aad,
            &mut buf,
            GenericArray::from_slice(&sealed.tag),
        )
        .ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_format_roundtrip() {
        let key = DataKey::generate().unwrap();
        let iv = random_iv().unwrap();
        let sealed = seal(&key, &iv, b"data:key:", b"value", "str").unwrap();
        let text = sealed.format();
        let back = Sealed::parse(&text).unwrap();
        assert_eq!(back, sealed);
        assert_eq!(
            open(&key, &back, b"data:key:").unwrap().as_slice(),
            b"value"
        );
        assert!(open(&key, &back, b"data:other:").is_none());
    }

    #[test]
    fn parse_rejects_empty_groups() {
        assert!(Sealed::parse("ENC[AES256_GCM,data:,iv:AA==,tag:AA==,type:str]").is_none());
        assert!(Sealed::parse("plain").is_none());
    }
}
