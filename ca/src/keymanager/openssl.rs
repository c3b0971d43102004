//! Signing through OpenSSL (`tls_backend = "openssl"`): the CA's key,
//! read from memory or disk as PKCS#8, held as an `EVP_PKEY` and used
//! through `EVP_DigestSign`, so the signatures come from OpenSSL (and,
//! with `fips = true`, from its FIPS provider) instead of ring.
//!
//! [`OpensslKey`] signs certificates for [`super::CaKey`]; [`OpensslJwtKey`]
//! signs JWT-SVIDs for [`meshid_identity::jwt::sign`], which keeps the one
//! encoding of header and claims.

use std::fmt;

use meshid_identity::jwt::{JwtError, JwtSigner};
use meshid_identity::{KeyError, PrivateKey};
use openssl::ecdsa::EcdsaSig;
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private};
use openssl::sign::Signer;
use rcgen::{PublicKeyData, SignatureAlgorithm};

/// A certificate signing key held by OpenSSL, with what rcgen needs to
/// write the certificate around its signatures.
pub(super) struct OpensslKey {
    pkey: PKey<Private>,
    /// rcgen's form of the public key (the EC point, or PKCS#1 for RSA).
    raw_public: Vec<u8>,
    algorithm: &'static SignatureAlgorithm,
    scheme: Scheme,
}

/// How a key signs, as rcgen encodes the signature algorithm.
#[derive(Debug, Clone, Copy)]
enum Scheme {
    /// ECDSA with this digest, DER (`Ecdsa-Sig-Value`) signatures.
    Ecdsa(fn() -> MessageDigest),
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
    /// Ed25519 (no separate digest).
    Ed25519,
}

// === impl OpensslKey ===

impl OpensslKey {
    /// `key` in OpenSSL: ECDSA P-256 (SHA-256), P-384 (SHA-384), RSA
    /// (PKCS#1 v1.5, SHA-256) or Ed25519, as rcgen picks for it.
    pub(super) fn new(key: &PrivateKey) -> Result<Self, KeyError> {
        let pair = key.key_pair()?;
        let algorithm = pair.algorithm();
        let scheme = if algorithm == &rcgen::PKCS_ECDSA_P256_SHA256 {
            Scheme::Ecdsa(MessageDigest::sha256)
        } else if algorithm == &rcgen::PKCS_ECDSA_P384_SHA384 {
            Scheme::Ecdsa(MessageDigest::sha384)
        } else if algorithm == &rcgen::PKCS_RSA_SHA256 {
            Scheme::RsaPkcs1Sha256
        } else if algorithm == &rcgen::PKCS_ED25519 {
            Scheme::Ed25519
        } else {
            return Err(KeyError::Rejected(format!(
                "OpenSSL signing supports ECDSA P-256/P-384, RSA and Ed25519 keys, not {algorithm:?}"
            )));
        };
        let pkey = PKey::private_key_from_pkcs8(key.pkcs8_der())
            .map_err(|e| KeyError::Rejected(format!("OpenSSL cannot load the key: {e}")))?;
        Ok(Self {
            pkey,
            raw_public: pair.der_bytes().to_vec(),
            algorithm,
            scheme,
        })
    }

    /// rcgen's form of the public key.
    pub(super) fn raw_public_key(&self) -> &[u8] {
        &self.raw_public
    }

    /// The signature algorithm certificates name.
    pub(super) fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }

    /// Signs `msg` (a certificate's TBS bytes) as the algorithm wants it.
    pub(super) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ErrorStack> {
        match self.scheme {
            Scheme::Ecdsa(digest) => digest_sign(digest(), &self.pkey, msg),
            Scheme::RsaPkcs1Sha256 => digest_sign(MessageDigest::sha256(), &self.pkey, msg),
            Scheme::Ed25519 => Signer::new_without_digest(&self.pkey)?.sign_oneshot_to_vec(msg),
        }
    }
}

impl fmt::Debug for OpensslKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpensslKey({:?}, ...)", self.scheme)
    }
}

/// A JWT-SVID signing key (EC P-256) held by OpenSSL.
pub struct OpensslJwtKey {
    key_id: String,
    pkey: PKey<Private>,
}

// === impl OpensslJwtKey ===

impl OpensslJwtKey {
    /// `key` (EC P-256 PKCS#8) in OpenSSL, publishing under `key_id`.
    pub fn new(key_id: impl Into<String>, key: &PrivateKey) -> Result<Self, JwtError> {
        let key_id = key_id.into();
        if key_id.is_empty() {
            return Err(JwtError::InvalidSigningKey("key ID is empty"));
        }
        let pkey = PKey::private_key_from_pkcs8(key.pkcs8_der())
            .map_err(|_| JwtError::InvalidSigningKey("OpenSSL cannot load the PKCS#8 key"))?;
        let p256 = pkey.id() == Id::EC
            && pkey
                .ec_key()
                .ok()
                .and_then(|ec| ec.group().curve_name())
                .is_some_and(|nid| nid == openssl::nid::Nid::X9_62_PRIME256V1);
        if !p256 {
            return Err(JwtError::InvalidSigningKey("not an EC P-256 private key"));
        }
        Ok(Self { key_id, pkey })
    }
}

impl JwtSigner for OpensslJwtKey {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn sign_es256(&self, signing_input: &[u8]) -> Result<[u8; 64], JwtError> {
        let failed = |e: ErrorStack| JwtError::Signing(format!("OpenSSL ES256 signing: {e}"));
        let der =
            digest_sign(MessageDigest::sha256(), &self.pkey, signing_input).map_err(failed)?;
        let sig = EcdsaSig::from_der(&der).map_err(failed)?;
        let mut raw = [0u8; 64];
        let r = sig.r().to_vec_padded(32).map_err(failed)?;
        let s = sig.s().to_vec_padded(32).map_err(failed)?;
        raw[..32].copy_from_slice(&r);
        raw[32..].copy_from_slice(&s);
        Ok(raw)
    }
}

impl fmt::Debug for OpensslJwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpensslJwtKey")
            .field("key_id", &self.key_id)
            .field("key", &"...")
            .finish()
    }
}

fn digest_sign(
    digest: MessageDigest,
    pkey: &PKey<Private>,
    msg: &[u8],
) -> Result<Vec<u8>, ErrorStack> {
    let mut signer = Signer::new(digest, pkey)?;
    signer.update(msg)?;
    signer.sign_to_vec()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use meshid_identity::{BundleSet, SpiffeId, TrustBundle};
    use std::time::{Duration, SystemTime};

    fn pkcs8(pkey: &PKey<Private>) -> PrivateKey {
        PrivateKey::from_pkcs8_der(pkey.private_key_to_pkcs8().unwrap()).unwrap()
    }

    #[test]
    fn every_key_type_signs_certificates_that_verify() {
        use meshid_identity::x509::self_signed_ca;
        use meshid_identity::{CaTemplate, TrustDomain};

        let rsa = pkcs8(&PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap());
        let ed25519 = pkcs8(&PKey::generate_ed25519().unwrap());
        let keys = [
            ("p256", PrivateKey::generate_p256().unwrap()),
            (
                "p384",
                PrivateKey::generate(meshid_identity::KeyAlgorithm::EcP384).unwrap(),
            ),
            ("rsa", rsa),
            ("ed25519", ed25519),
        ];
        let now = SystemTime::now();
        let template = CaTemplate {
            trust_domain: TrustDomain::new("example.org").unwrap(),
            common_name: "test".into(),
            not_before: now,
            not_after: now + Duration::from_secs(60),
            path_len: None,
        };
        for (name, private) in keys {
            let key = super::super::CaKey::new(&private, super::super::Signing::Openssl).unwrap();
            assert_eq!(key.signing(), Some(super::super::Signing::Openssl), "{name}");
            assert_eq!(key.public_key_der(), private.public_key_der(), "{name}");
            let cert = key.sign_with(|k| self_signed_ca(&template, &k)).unwrap();
            let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
            parsed
                .verify_signature(None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn es256_tokens_from_openssl_validate() {
        let private = PrivateKey::generate_p256().unwrap();
        let key = OpensslJwtKey::new("k1", &private).unwrap();
        let ring_key =
            meshid_identity::JwtSigningKey::from_pkcs8_der("k1", private.pkcs8_der()).unwrap();
        let id: SpiffeId = "spiffe://example.org/api".parse().unwrap();
        let mut bundle = TrustBundle::new(id.trust_domain());
        bundle.jwt_authorities.push(ring_key.public_authority());
        let bundles: BundleSet = [bundle].into_iter().collect();
        let now = SystemTime::now();
        for _ in 0..16 {
            let token = meshid_identity::jwt::sign(
                &key,
                &id,
                &["a".into()],
                now,
                now + Duration::from_secs(60),
            )
            .unwrap();
            let claims = meshid_identity::jwt::validate(&token, "a", &bundles, now).unwrap();
            assert_eq!(claims.spiffe_id, id);
        }
        let p384 = PrivateKey::generate(meshid_identity::KeyAlgorithm::EcP384).unwrap();
        assert!(OpensslJwtKey::new("k1", &p384).is_err());
        assert!(OpensslJwtKey::new("", &private).is_err());
    }
}
