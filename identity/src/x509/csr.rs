//! PKCS#10 certificate signing requests, accepted for their key only.
//!
//! A CSR proves possession of a private key. Everything else in it (subject,
//! requested SANs, basicConstraints, …) is ignored by design: the CA builds
//! the certificate from its own template, never from what a client asks for.
//! [`verify_ca_csr`] is the one exception, for a downstream CA's request:
//! it also reads the subject CommonName and requires the request to ask for
//! a CA certificate, so a leaf's CSR is never turned into a CA by mistake.
//! [`key_only_csr`] builds the request an agent sends for its own key.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use super::X509Error;
use crate::key::PrivateKey;

/// Largest CSR accepted, in bytes of DER.
pub const MAX_CSR_LEN: usize = 8 * 1024;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// What a verified CSR yields: the key to certify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCsr {
    /// The requester's public key as DER SubjectPublicKeyInfo.
    pub public_key_der: Vec<u8>,
}

/// What a verified CA CSR yields: the key to certify and the subject name
/// the requester asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCaCsr {
    /// The requester's public key as DER SubjectPublicKeyInfo.
    pub public_key_der: Vec<u8>,
    /// The subject's first CommonName, if it has a UTF-8 one.
    pub common_name: Option<String>,
}

/// Why a CSR was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// The CSR is larger than [`MAX_CSR_LEN`].
    #[error("CSR is {0} bytes; the limit is {MAX_CSR_LEN}")]
    TooLong(usize),
    /// The bytes are not a DER PKCS#10 request.
    #[error("CSR is not valid DER PKCS#10")]
    Malformed,
    /// The self-signature does not verify with the enclosed key.
    #[error("CSR signature does not verify; the request was altered or signed with another key")]
    BadSignature,
    /// The key type or size is not accepted.
    #[error("CSR key is not accepted: {0}; use EC P-256 (or RSA >= 2048, Ed25519)")]
    UnsupportedKey(String),
    /// The key type or size is not accepted for a CA.
    #[error("CA CSR key is not accepted: {0}; use EC P-256, EC P-384 or RSA >= 2048")]
    UnsupportedCaKey(String),
    /// A CA CSR does not request basicConstraints CA=true.
    #[error(
        "CSR does not request a CA certificate (no basicConstraints CA=true in its extension \
         request); make the downstream CA's CSR with `meshid ca csr`"
    )]
    NotCaRequest,
}

/// Which keys a request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// P-256, RSA >= 2048, Ed25519.
    Leaf,
    /// P-256, P-384, RSA >= 2048.
    Ca,
}

/// Checks a DER CSR's size, structure, key type and self-signature.
pub fn verify_csr(der: &[u8]) -> Result<VerifiedCsr, CsrError> {
    let csr = parse(der, Keys::Leaf)?;
    Ok(VerifiedCsr {
        public_key_der: csr.certification_request_info.subject_pki.raw.to_vec(),
    })
}

/// Checks a downstream CA's DER CSR like [`verify_csr`] (CA keys: P-256,
/// P-384, RSA >= 2048) and that it requests basicConstraints CA=true.
pub fn verify_ca_csr(der: &[u8]) -> Result<VerifiedCaCsr, CsrError> {
    let csr = parse(der, Keys::Ca)?;
    let wants_ca = csr.requested_extensions().is_some_and(|mut exts| {
        exts.any(|e| matches!(e, ParsedExtension::BasicConstraints(bc) if bc.ca))
    });
    if !wants_ca {
        return Err(CsrError::NotCaRequest);
    }
    let info = &csr.certification_request_info;
    let common_name = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Ok(VerifiedCaCsr {
        public_key_der: info.subject_pki.raw.to_vec(),
        common_name,
    })
}

/// A PKCS#10 request (DER) for `key` with an empty subject and no
/// extensions: what an agent (or a downstream CA attesting like one) sends
/// for its SVID, since the CA takes only the key ([`verify_csr`]).
pub fn key_only_csr(key: &PrivateKey) -> Result<Vec<u8>, X509Error> {
    let kp = key
        .key_pair()
        .map_err(|e| X509Error::PublicKey(e.to_string()))?;
    rcgen::CertificateParams::default()
        .serialize_request(&kp)
        .map(|c| c.der().to_vec())
        .map_err(|e| X509Error::Sign(e.to_string()))
}

fn parse(der: &[u8], keys: Keys) -> Result<X509CertificationRequest<'_>, CsrError> {
    if der.len() > MAX_CSR_LEN {
        return Err(CsrError::TooLong(der.len()));
    }
    // The parser tolerates a primitive outer SEQUENCE tag; DER does not.
    if der.first() != Some(&0x30) {
        return Err(CsrError::Malformed);
    }
    let csr = match X509CertificationRequest::from_der(der) {
        // Unused bits in the signature would make the CSR malleable.
        Ok(([], csr)) if csr.signature_value.unused_bits == 0 => csr,
        _ => return Err(CsrError::Malformed),
    };
    check_key(&csr.certification_request_info.subject_pki, keys)?;
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
    Ok(csr)
}

fn check_key(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
    keys: Keys,
) -> Result<(), CsrError> {
    let unsupported = |m: String| match keys {
        Keys::Leaf => CsrError::UnsupportedKey(m),
        Keys::Ca => CsrError::UnsupportedCaKey(m),
    };
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        // Uncompressed points: 0x04 || X || Y.
        let point_len = match curve {
            Some(c) if c == OID_EC_P256 => 65,
            Some(c) if c == OID_NIST_EC_P384 && keys == Keys::Ca => 97,
            _ if keys == Keys::Ca => {
                return Err(unsupported("EC curve is not P-256 or P-384".into()));
            }
            _ => return Err(unsupported("EC curve is not P-256".into())),
        };
        match spki.parsed() {
            Ok(PublicKey::EC(p)) if p.data().len() == point_len && p.data()[0] == 4 => Ok(()),
            _ => Err(unsupported("EC point is not an uncompressed point".into())),
        }
    } else if *alg == OID_PKCS1_RSAENCRYPTION {
        match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) if rsa.key_size() >= MIN_RSA_BITS => Ok(()),
            Ok(PublicKey::RSA(rsa)) => {
                Err(unsupported(format!("RSA key has {} bits", rsa.key_size())))
            }
            _ => Err(CsrError::Malformed),
        }
    } else if *alg == OID_SIG_ED25519 && keys == Keys::Leaf {
        if spki.subject_public_key.data.len() == 32 {
            Ok(())
        } else {
            Err(unsupported("Ed25519 key is not 32 bytes".into()))
        }
    } else {
        Err(unsupported(format!("algorithm {alg}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn csr_der() -> Vec<u8> {
        let key = PrivateKey::generate_p256().unwrap();
        let kp = key.key_pair().unwrap();
        let params = rcgen::CertificateParams::new(vec!["x.example".to_string()]).unwrap();
        params.serialize_request(&kp).unwrap().der().to_vec()
    }

    #[test]
    fn a_key_only_csr_verifies_and_carries_the_key() {
        let key = PrivateKey::generate_p256().unwrap();
        let der = key_only_csr(&key).unwrap();
        assert_eq!(
            verify_csr(&der).unwrap().public_key_der,
            key.public_key_der()
        );
    }

    #[test]
    fn accepts_rcgen_csr_and_returns_its_key() {
        let der = csr_der();
        let v = verify_csr(&der).unwrap();
        assert_eq!(v.public_key_der[0], 0x30);
    }

    #[test]
    fn rejects_tampering_size_and_garbage() {
        let mut der = csr_der();
        let last = der.len() - 1;
        der[last] ^= 0x01;
        assert_eq!(verify_csr(&der), Err(CsrError::BadSignature));
        assert_eq!(verify_csr(&[0u8; 9000]), Err(CsrError::TooLong(9000)));
        assert_eq!(
            verify_csr(&[0x30, 0x03, 0x02, 0x01, 0x00]),
            Err(CsrError::Malformed)
        );
        let mut trailing = csr_der();
        trailing.push(0);
        assert_eq!(verify_csr(&trailing), Err(CsrError::Malformed));
    }

    #[test]
    fn signature_with_unused_bits_is_refused() {
        let mut der = csr_der();
        // Find the signature BIT STRING: tag 0x03 whose content runs to the end.
        let pos = (0..der.len() - 2)
            .rev()
            .find(|&i| der[i] == 0x03 && usize::from(der[i + 1]) == der.len() - i - 2)
            .unwrap();
        assert_eq!(der[pos + 2], 0);
        // Make the last byte end in a zero bit so the DER padding rule holds.
        let last = der.len() - 1;
        der[last] &= 0xfe;
        der[pos + 2] = 1;
        assert_eq!(verify_csr(&der), Err(CsrError::Malformed));
    }

    #[test]
    fn ca_csr_must_request_a_ca_and_yields_its_common_name() {
        let key = PrivateKey::generate_p256().unwrap();
        let kp = key.key_pair().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mesh east");
        let leaf = params.serialize_request(&kp).unwrap().der().to_vec();
        assert_eq!(verify_ca_csr(&leaf), Err(CsrError::NotCaRequest));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        let ca = params.serialize_request(&kp).unwrap().der().to_vec();
        let v = verify_ca_csr(&ca).unwrap();
        assert_eq!(v.common_name.as_deref(), Some("mesh east"));
        assert_eq!(v.public_key_der, key.public_key_der());
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let der = params.serialize_request(&p384).unwrap().der().to_vec();
        assert!(verify_ca_csr(&der).is_ok(), "P-384 is a CA key");
        assert!(matches!(verify_csr(&der), Err(CsrError::UnsupportedKey(_))));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            proptest::prop_assert!(verify_csr(&bytes).is_err());
            proptest::prop_assert!(verify_ca_csr(&bytes).is_err());
        }

    }
}
