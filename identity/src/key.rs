//! Private keys: PKCS#8 DER held in memory that is wiped on drop.
//!
//! ```
//! use meshid_identity::key::PrivateKey;
//! let key = PrivateKey::generate_p256().unwrap();
//! let again = PrivateKey::from_pem(&key.to_pkcs8_pem()).unwrap();
//! assert_eq!(key.public_key_der(), again.public_key_der());
//! assert_eq!(format!("{key:?}"), "PrivateKey(...)");
//! ```

use std::fmt;

use rcgen::{KeyPair, PublicKeyData};
use zeroize::Zeroizing;

/// Largest private key input accepted (PEM or DER), in bytes.
pub const MAX_KEY_LEN: usize = 16 * 1024;

/// DER of the AlgorithmIdentifier `{ id-ecPublicKey, prime256v1 }`.
const EC_P256_ALG_ID: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];
/// DER of the OID prime256v1, as found in a SEC1 key's `[0] parameters`.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Why a private key could not be generated, read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Key generation failed in the crypto library.
    #[error("could not generate a key: {0}")]
    Generate(String),
    /// The input is larger than [`MAX_KEY_LEN`].
    #[error("private key input is {0} bytes; the limit is {MAX_KEY_LEN}")]
    TooLong(usize),
    /// The PEM text could not be parsed.
    #[error("private key PEM is malformed: {0}")]
    Pem(String),
    /// The PEM block label is neither `PRIVATE KEY` nor `EC PRIVATE KEY`.
    #[error(
        "unsupported PEM block {0:?}; expected \"PRIVATE KEY\" (PKCS#8) or \"EC PRIVATE KEY\" (SEC1 P-256)"
    )]
    UnsupportedPem(String),
    /// A SEC1 key is not on P-256 or lacks its public key.
    #[error("SEC1 key is malformed or not P-256: {0}")]
    Sec1(&'static str),
    /// The crypto library rejected the PKCS#8 key.
    #[error("private key rejected: {0}; expected PKCS#8 P-256, P-384, Ed25519 or RSA")]
    Rejected(String),
}

/// A private key as PKCS#8 DER; the bytes are zeroed when dropped.
#[derive(Clone)]
pub struct PrivateKey {
    pkcs8: Zeroizing<Vec<u8>>,
}

// === impl PrivateKey ===

impl PrivateKey {
    /// Generates a fresh ECDSA P-256 key.
    pub fn generate_p256() -> Result<Self, KeyError> {
        let kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Ok(Self {
            pkcs8: Zeroizing::new(kp.serialize_der()),
        })
    }

    /// Takes PKCS#8 DER; checks that the crypto library can use it.
    pub fn from_pkcs8_der(der: Vec<u8>) -> Result<Self, KeyError> {
        let pkcs8 = Zeroizing::new(der);
        if pkcs8.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(pkcs8.len()));
        }
        let key = Self { pkcs8 };
        key.key_pair()?;
        Ok(key)
    }

    /// Reads a `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1, P-256) PEM block.
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        if pem_text.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(pem_text.len()));
        }
        let block = pem::parse(pem_text).map_err(|e| KeyError::Pem(e.to_string()))?;
        let tag = block.tag().to_owned();
        let contents = Zeroizing::new(block.into_contents());
        match tag.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(contents.to_vec()),
            "EC PRIVATE KEY" => Self::from_pkcs8_der(sec1_p256_to_pkcs8(&contents)?),
            _ => Err(KeyError::UnsupportedPem(tag)),
        }
    }

    /// The key as a `PRIVATE KEY` PEM block.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let block = pem::Pem::new("PRIVATE KEY", self.pkcs8.to_vec());
        let text = Zeroizing::new(pem::encode(&block));
        let mut contents = block.into_contents();
        zeroize::Zeroize::zeroize(&mut contents);
        text
    }

    /// The PKCS#8 DER bytes.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> Vec<u8> {
        // The key was checked at construction; an error here is impossible
        // in practice and yields an empty key that every consumer rejects.
        self.key_pair()
            .map(|kp| kp.subject_public_key_info())
            .unwrap_or_default()
    }

    /// An rcgen key pair that can sign certificates and CSRs.
    pub fn key_pair(&self) -> Result<KeyPair, KeyError> {
        KeyPair::try_from(self.pkcs8.as_slice()).map_err(|e| KeyError::Rejected(e.to_string()))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(...)")
    }
}

/// Wraps a SEC1 `ECPrivateKey` (RFC 5915) for P-256 into PKCS#8 (RFC 5208).
fn sec1_p256_to_pkcs8(sec1: &[u8]) -> Result<Vec<u8>, KeyError> {
    check_sec1_p256(sec1)?;
    let mut body = Vec::with_capacity(sec1.len() + 32);
    body.extend_from_slice(&[0x02, 0x01, 0x00]); // version 0
    body.extend_from_slice(EC_P256_ALG_ID);
    der_tlv(&mut body, 0x04, sec1);
    let mut out = Vec::with_capacity(body.len() + 4);
    der_tlv(&mut out, 0x30, &body);
    zeroize::Zeroize::zeroize(&mut body);
    Ok(out)
}

/// Checks the outer shape of a SEC1 key and that any curve named is P-256.
fn check_sec1_p256(sec1: &[u8]) -> Result<(), KeyError> {
    let (tag, inner, rest) = der_read(sec1).ok_or(KeyError::Sec1("not a DER SEQUENCE"))?;
    if tag != 0x30 || !rest.is_empty() {
        return Err(KeyError::Sec1("not a single DER SEQUENCE"));
    }
    let (tag, version, inner) = der_read(inner).ok_or(KeyError::Sec1("missing version"))?;
    if tag != 0x02 || version != [1] {
        return Err(KeyError::Sec1("version is not 1"));
    }
    let (tag, _secret, mut inner) = der_read(inner).ok_or(KeyError::Sec1("missing key"))?;
    if tag != 0x04 {
        return Err(KeyError::Sec1("private key is not an OCTET STRING"));
    }
    let mut has_public = false;
    while !inner.is_empty() {
        let (tag, value, rest) = der_read(inner).ok_or(KeyError::Sec1("bad trailing field"))?;
        match tag {
            0xa0 if value != P256_OID => return Err(KeyError::Sec1("curve is not P-256")),
            0xa1 => has_public = true,
            _ => {}
        }
        inner = rest;
    }
    if !has_public {
        return Err(KeyError::Sec1(
            "public key is missing; re-export the key with OpenSSL",
        ));
    }
    Ok(())
}

/// Appends a DER TLV with a definite length.
fn der_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
}

/// Reads one DER TLV (single-byte tags): `(tag, value, rest)`.
fn der_read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_round_trip_and_debug_hides_key() {
        let key = PrivateKey::generate_p256().unwrap();
        let pem = key.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = PrivateKey::from_pem(&pem).unwrap();
        assert_eq!(back.pkcs8_der(), key.pkcs8_der());
        assert_eq!(format!("{key:?}"), "PrivateKey(...)");
        let spki = key.public_key_der();
        assert_eq!(spki[0], 0x30);
        assert!(spki.windows(P256_OID.len()).any(|w| w == P256_OID));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            PrivateKey::from_pkcs8_der(vec![0x30, 0x00]),
            Err(KeyError::Rejected(_))
        ));
        assert!(matches!(
            PrivateKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(KeyError::UnsupportedPem(_))
        ));
        let sec1 = pem::encode(&pem::Pem::new(
            "EC PRIVATE KEY",
            vec![0x30, 0x03, 0x02, 0x01, 0x01],
        ));
        assert!(matches!(
            PrivateKey::from_pem(&sec1),
            Err(KeyError::Sec1(_))
        ));
    }

    #[test]
    fn der_length_encoding() {
        let mut out = Vec::new();
        der_tlv(&mut out, 0x04, &[7u8; 300]);
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (tag, value, rest) = der_read(&out).unwrap();
        assert_eq!((tag, value.len(), rest.len()), (0x04, 300, 0));
    }
}
