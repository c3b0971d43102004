//! [`CaKey`]: the CA's certificate signing key, held in memory (signing
//! with ring, or with OpenSSL for `tls_backend = "openssl"`) or on a
//! PKCS#11 token. Either way it is an `rcgen::SigningKey`, so every
//! certificate builder takes it; [`CaKey::sign_with`] also tells a token
//! that failed (retry later) from a certificate that cannot be built.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use meshid_identity::{KeyError, PrivateKey, X509Error};
use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};
use zeroize::Zeroizing;

use super::Signing;
use super::openssl::OpensslKey;
use super::pkcs11::{Pkcs11Error, TokenKey};

/// A certificate signing key: in memory (a [`PrivateKey`]) or a key pair
/// on a PKCS#11 token that never leaves it. Cheap to clone.
#[derive(Clone)]
pub struct CaKey(Inner);

#[derive(Clone)]
enum Inner {
    Memory(Arc<(PrivateKey, KeyPair)>),
    Openssl(Arc<(PrivateKey, OpensslKey)>),
    Token(Arc<TokenKey>),
}

/// Why [`CaKey::sign_with`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaSignError {
    /// The key's backend (the token) could not sign now; a later call may.
    #[error("the CA signing key on the {backend} token is unavailable: {source}")]
    Unavailable {
        /// `pkcs11`.
        backend: &'static str,
        /// What the token said.
        #[source]
        source: Pkcs11Error,
    },
    /// The certificate could not be built or signed.
    #[error(transparent)]
    Certificate(#[from] X509Error),
}

// === impl CaKey ===

impl CaKey {
    /// A key held in memory that `signing` signs with.
    pub fn new(key: &PrivateKey, signing: Signing) -> Result<Self, KeyError> {
        match signing {
            Signing::Ring => Self::in_memory(key),
            Signing::Openssl => Ok(Self(Inner::Openssl(Arc::new((
                key.clone(),
                OpensslKey::new(key)?,
            ))))),
        }
    }

    /// A key held in memory, signing with ring.
    pub fn in_memory(key: &PrivateKey) -> Result<Self, KeyError> {
        Ok(Self(Inner::Memory(Arc::new((
            key.clone(),
            key.key_pair()?,
        )))))
    }

    /// The key as a `PRIVATE KEY` PEM block; `None` for a key on a token,
    /// which cannot leave it.
    pub fn to_pkcs8_pem(&self) -> Option<Zeroizing<String>> {
        match &self.0 {
            Inner::Memory(m) => Some(m.0.to_pkcs8_pem()),
            Inner::Openssl(o) => Some(o.0.to_pkcs8_pem()),
            Inner::Token(_) => None,
        }
    }

    pub(super) fn on_token(key: Arc<TokenKey>) -> Self {
        Self(Inner::Token(key))
    }

    /// The public key as DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.subject_public_key_info()
    }

    /// Where the key is used: `memory` (its bytes are in this process,
    /// whichever library signs) or `pkcs11`; the label of the signing
    /// error metric.
    pub fn backend(&self) -> &'static str {
        match &self.0 {
            Inner::Memory(_) | Inner::Openssl(_) => "memory",
            Inner::Token(_) => "pkcs11",
        }
    }

    /// Which library signs with a key in memory; `None` on a token.
    pub fn signing(&self) -> Option<Signing> {
        match &self.0 {
            Inner::Memory(_) => Some(Signing::Ring),
            Inner::Openssl(_) => Some(Signing::Openssl),
            Inner::Token(_) => None,
        }
    }

    /// Runs `build` (which signs with the key it is given, once or more)
    /// and reports a token failure as [`CaSignError::Unavailable`] rather
    /// than as a certificate error.
    pub fn sign_with<T>(
        &self,
        build: impl FnOnce(&dyn SigningKey) -> Result<T, X509Error>,
    ) -> Result<T, CaSignError> {
        let attempt = Attempt {
            key: self,
            failure: RefCell::new(None),
        };
        let result = build(&attempt);
        match (result, attempt.failure.into_inner()) {
            (Ok(v), _) => Ok(v),
            (Err(_), Some(source)) => Err(CaSignError::Unavailable {
                backend: self.backend(),
                source,
            }),
            (Err(e), None) => Err(CaSignError::Certificate(e)),
        }
    }

    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, Option<Pkcs11Error>> {
        match &self.0 {
            Inner::Memory(m) => m.1.sign(msg).map_err(|_| None),
            Inner::Openssl(o) => o.1.sign(msg).map_err(|e| {
                tracing::warn!(error = %e, "OpenSSL signing failed");
                None
            }),
            Inner::Token(key) => key.sign(msg).map_err(Some),
        }
    }
}

impl PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        match &self.0 {
            Inner::Memory(m) => m.1.der_bytes(),
            Inner::Openssl(o) => o.1.raw_public_key(),
            Inner::Token(key) => key.raw_public_key(),
        }
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match &self.0 {
            Inner::Memory(m) => m.1.algorithm(),
            Inner::Openssl(o) => o.1.algorithm(),
            Inner::Token(key) => key.algorithm(),
        }
    }
}

impl SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.try_sign(msg).map_err(|e| {
            if let Some(e) = e {
                tracing::warn!(error = %e, "signing on the token failed");
            }
            rcgen::Error::RemoteKeyError
        })
    }
}

impl fmt::Debug for CaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Memory(_) => f.write_str("CaKey(memory, ...)"),
            Inner::Openssl(_) => f.write_str("CaKey(memory, openssl, ...)"),
            Inner::Token(key) => write!(f, "CaKey({key:?})"),
        }
    }
}

/// One [`CaKey::sign_with`] call: remembers why the token failed.
struct Attempt<'a> {
    key: &'a CaKey,
    failure: RefCell<Option<Pkcs11Error>>,
}

impl PublicKeyData for Attempt<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.key.der_bytes()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.key.algorithm()
    }
}

impl SigningKey for Attempt<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.key.try_sign(msg).map_err(|e| {
            if let Some(e) = e {
                *self.failure.borrow_mut() = Some(e);
            }
            rcgen::Error::RemoteKeyError
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use meshid_identity::x509::self_signed_ca;
    use meshid_identity::{CaTemplate, TrustDomain};
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_memory_key_signs_like_its_key_pair() {
        let private = PrivateKey::generate_p256().unwrap();
        let key = CaKey::in_memory(&private).unwrap();
        assert_eq!(key.public_key_der(), private.public_key_der());
        assert_eq!(key.backend(), "memory");
        assert_eq!(format!("{key:?}"), "CaKey(memory, ...)");
        let pem = key.to_pkcs8_pem().unwrap();
        assert_eq!(
            PrivateKey::from_pem(&pem).unwrap().public_key_der(),
            private.public_key_der()
        );
        let now = SystemTime::now();
        let template = CaTemplate {
            trust_domain: TrustDomain::new("example.org").unwrap(),
            common_name: "test".into(),
            not_before: now,
            not_after: now + Duration::from_secs(60),
            path_len: None,
        };
        let cert = key.sign_with(|k| self_signed_ca(&template, &k)).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
        assert_eq!(parsed.public_key().raw, private.public_key_der());
        let bad = CaTemplate {
            common_name: String::new(),
            ..template
        };
        assert!(matches!(
            key.sign_with(|k| self_signed_ca(&bad, &k)),
            Err(CaSignError::Certificate(X509Error::CommonName(0)))
        ));
    }
}
