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
use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};
use zeroize::Zeroizing;

use crate::der::{self, INTEGER, OCTET_STRING, OID_P256, OID_P384, SEQUENCE};

mod generate;

pub use generate::{KeyAlgorithm, UnknownKeyAlgorithm};

/// Largest private key input accepted (PEM or DER), in bytes.
pub const MAX_KEY_LEN: usize = 16 * 1024;

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
    /// The PEM block label is not `PRIVATE KEY`, `EC PRIVATE KEY` or
    /// `RSA PRIVATE KEY`.
    #[error(
        "unsupported PEM block {0:?}; expected \"PRIVATE KEY\" (PKCS#8), \"EC PRIVATE KEY\" (SEC1 P-256 or P-384) or \"RSA PRIVATE KEY\" (PKCS#1); an encrypted key must be decrypted first (openssl pkey -in key.pem -out plain.pem)"
    )]
    UnsupportedPem(String),
    /// A SEC1 key is not on P-256 or P-384, or lacks its public key.
    #[error("SEC1 key is malformed or not P-256/P-384: {0}")]
    Sec1(&'static str),
    /// The crypto library rejected the PKCS#8 key.
    #[error("private key rejected: {0}; expected PKCS#8 P-256, P-384, Ed25519 or RSA")]
    Rejected(String),
}

/// A private key as PKCS#8 DER; the bytes are zeroed when dropped.
///
/// A value exists only for a key the crypto library accepted, so its public
/// key is known from construction on.
#[derive(Clone)]
pub struct PrivateKey {
    pkcs8: Zeroizing<Vec<u8>>,
    /// The public key as DER SubjectPublicKeyInfo.
    spki: Vec<u8>,
}

// === impl PrivateKey ===

impl PrivateKey {
    /// Generates a fresh ECDSA P-256 key ([`PrivateKey::generate`] makes
    /// the other [`KeyAlgorithm`]s).
    pub fn generate_p256() -> Result<Self, KeyError> {
        Self::generate_with(&rcgen::PKCS_ECDSA_P256_SHA256)
    }

    /// A fresh key that rcgen (ring) generates for `alg`.
    fn generate_with(alg: &'static rcgen::SignatureAlgorithm) -> Result<Self, KeyError> {
        let kp = KeyPair::generate_for(alg).map_err(|e| KeyError::Generate(e.to_string()))?;
        Ok(Self {
            pkcs8: Zeroizing::new(kp.serialize_der()),
            spki: kp.subject_public_key_info(),
        })
    }

    /// Takes PKCS#8 DER; checks that the crypto library can use it.
    pub fn from_pkcs8_der(der: Vec<u8>) -> Result<Self, KeyError> {
        let pkcs8 = Zeroizing::new(der);
        if pkcs8.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(pkcs8.len()));
        }
        let spki = key_pair(&pkcs8)?.subject_public_key_info();
        Ok(Self { pkcs8, spki })
    }

    /// Reads a `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC1, P-256 or
    /// P-384) or `RSA PRIVATE KEY` (PKCS#1) PEM block; SEC1 and PKCS#1 keys
    /// are rewrapped as PKCS#8.
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        if pem_text.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(pem_text.len()));
        }
        let block = pem::parse(pem_text).map_err(|e| KeyError::Pem(e.to_string()))?;
        let tag = block.tag().to_owned();
        let contents = Zeroizing::new(block.into_contents());
        match tag.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(contents.to_vec()),
            "EC PRIVATE KEY" => {
                let mut pkcs8 = sec1_to_pkcs8(&contents)?;
                Self::from_pkcs8_der(std::mem::take(&mut *pkcs8))
            }
            "RSA PRIVATE KEY" => {
                let mut pkcs8 = wrap_pkcs8(&der::rsa_algorithm(), &contents);
                Self::from_pkcs8_der(std::mem::take(&mut *pkcs8))
            }
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

    /// The public key as DER SubjectPublicKeyInfo (never empty: it was
    /// derived when the key was accepted).
    pub fn public_key_der(&self) -> Vec<u8> {
        self.spki.clone()
    }

    /// An rcgen key pair that can sign certificates and CSRs.
    pub fn key_pair(&self) -> Result<KeyPair, KeyError> {
        key_pair(&self.pkcs8)
    }
}

fn key_pair(pkcs8: &[u8]) -> Result<KeyPair, KeyError> {
    KeyPair::try_from(pkcs8).map_err(|e| KeyError::Rejected(e.to_string()))
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(...)")
    }
}

/// Wraps a SEC1 `ECPrivateKey` (RFC 5915) for P-256 or P-384 into PKCS#8.
fn sec1_to_pkcs8(sec1: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let curve = check_sec1(sec1)?;
    Ok(wrap_pkcs8(&der::ec_algorithm(curve), sec1))
}

/// A PKCS#8 `PrivateKeyInfo` (RFC 5208) holding `key` (SEC1 or PKCS#1 DER)
/// under `algorithm`; the crypto library then checks the key itself.
fn wrap_pkcs8(algorithm: &[u8], key: &[u8]) -> Zeroizing<Vec<u8>> {
    let version = [INTEGER, 0x01, 0x00];
    let key = Zeroizing::new(der::tlv(OCTET_STRING, key));
    let body = Zeroizing::new([&version[..], algorithm, &key].concat());
    Zeroizing::new(der::tlv(SEQUENCE, &body))
}

/// Checks the outer shape of a SEC1 key; returns its curve (when the key
/// names none, P-384 for a 48-byte scalar, else P-256).
fn check_sec1(sec1: &[u8]) -> Result<&'static [u8], KeyError> {
    let (rest, key) = read(sec1).ok_or(KeyError::Sec1("not a DER SEQUENCE"))?;
    if key.tag() != Tag::Sequence || !rest.is_empty() {
        return Err(KeyError::Sec1("not a single DER SEQUENCE"));
    }
    let (inner, version) = read(key.data).ok_or(KeyError::Sec1("missing version"))?;
    if version.tag() != Tag::Integer || version.data != [1] {
        return Err(KeyError::Sec1("version is not 1"));
    }
    let (mut inner, secret) = read(inner).ok_or(KeyError::Sec1("missing key"))?;
    if secret.tag() != Tag::OctetString {
        return Err(KeyError::Sec1("private key is not an OCTET STRING"));
    }
    let mut has_public = false;
    // Without the (optional) curve parameters, the scalar's size tells.
    let mut curve = if secret.data.len() == 48 {
        OID_P384
    } else {
        OID_P256
    };
    while !inner.is_empty() {
        let (rest, field) = read(inner).ok_or(KeyError::Sec1("bad trailing field"))?;
        if field.class() == Class::ContextSpecific {
            match field.tag() {
                Tag(0) if field.data == OID_P256 => curve = OID_P256,
                Tag(0) if field.data == OID_P384 => curve = OID_P384,
                Tag(0) => return Err(KeyError::Sec1("curve is not P-256 or P-384")),
                Tag(1) => has_public = true,
                _ => {}
            }
        }
        inner = rest;
    }
    if !has_public {
        return Err(KeyError::Sec1(
            "public key is missing; re-export the key with OpenSSL",
        ));
    }
    Ok(curve)
}

/// One DER element (universal-class or tagged) and what follows it.
fn read(input: &[u8]) -> Option<(&[u8], Any<'_>)> {
    Any::from_der(input).ok()
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
        // Known from construction on, and the same the crypto library derives.
        let derived = key.key_pair().unwrap().subject_public_key_info();
        assert_eq!(spki, derived);
        assert_eq!(back.public_key_der(), derived);
        let from_der = PrivateKey::from_pkcs8_der(key.pkcs8_der().to_vec()).unwrap();
        assert_eq!(from_der.public_key_der(), derived);
        assert!(spki.windows(OID_P256.len()).any(|w| w == OID_P256));
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

    /// The SEC1 key inside a PKCS#8 one (its last OCTET STRING).
    fn sec1_of(key: &PrivateKey) -> Vec<u8> {
        let (_, info) = read(key.pkcs8_der()).unwrap();
        let mut fields = info.data;
        let mut last = None;
        while let Some((rest, field)) = read(fields) {
            last = Some(field);
            fields = rest;
        }
        last.unwrap().data.to_vec()
    }

    #[test]
    fn sec1_p384_key_is_rewrapped_and_keeps_its_public_key() {
        let kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let key = PrivateKey::from_pkcs8_der(kp.serialize_der()).unwrap();
        let sec1 = &sec1_of(&key);
        let text = pem::encode(&pem::Pem::new("EC PRIVATE KEY", sec1.to_vec()));
        let back = PrivateKey::from_pem(&text).unwrap();
        assert_eq!(back.public_key_der(), key.public_key_der());
        assert!(
            back.public_key_der()
                .windows(OID_P384.len())
                .any(|w| w == OID_P384)
        );
    }

    #[test]
    fn a_pkcs1_block_that_is_not_an_rsa_key_is_rejected() {
        let text = pem::encode(&pem::Pem::new("RSA PRIVATE KEY", vec![0x30, 0x00]));
        assert!(matches!(
            PrivateKey::from_pem(&text),
            Err(KeyError::Rejected(_))
        ));
    }

    #[test]
    fn sec1_p256_key_is_rewrapped_and_keeps_its_public_key() {
        let key = PrivateKey::generate_p256().unwrap();
        let sec1 = &sec1_of(&key);
        let text = pem::encode(&pem::Pem::new("EC PRIVATE KEY", sec1.to_vec()));
        let back = PrivateKey::from_pem(&text).unwrap();
        assert_eq!(back.public_key_der(), key.public_key_der());
        assert!(matches!(
            PrivateKey::from_pem(&pem::encode(&pem::Pem::new(
                "EC PRIVATE KEY",
                [sec1.as_slice(), &[0]].concat()
            ))),
            Err(KeyError::Sec1(_))
        ));
    }
}
