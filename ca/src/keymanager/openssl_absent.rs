//! The OpenSSL signing types of a CA built without the `openssl` feature:
//! they cannot be made (start-up refuses `tls_backend = "openssl"` on such
//! a build first), so the code that holds them needs no cfg of its own.

use std::fmt;

use meshid_identity::jwt::{JwtError, JwtSigner};
use meshid_identity::{KeyError, PrivateKey};
use rcgen::SignatureAlgorithm;

/// The error both constructors return.
const ABSENT: &str =
    "this meshid is built without the OpenSSL backend (cargo build --features openssl)";

/// Always fails: this build has no OpenSSL.
pub(super) fn generate_p256() -> Result<PrivateKey, KeyError> {
    Err(KeyError::Generate(ABSENT.into()))
}

/// A certificate signing key held by OpenSSL: none exists in this build.
#[derive(Debug)]
pub(super) enum OpensslKey {}

impl OpensslKey {
    pub(super) fn new(_key: &PrivateKey) -> Result<Self, KeyError> {
        Err(KeyError::Rejected(ABSENT.into()))
    }

    pub(super) fn raw_public_key(&self) -> &[u8] {
        match *self {}
    }

    pub(super) fn algorithm(&self) -> &'static SignatureAlgorithm {
        match *self {}
    }

    pub(super) fn sign(&self, _msg: &[u8]) -> Result<Vec<u8>, std::convert::Infallible> {
        match *self {}
    }
}

/// A JWT-SVID signing key held by OpenSSL: none exists in this build.
pub enum OpensslJwtKey {}

impl OpensslJwtKey {
    /// Always fails: this build has no OpenSSL.
    pub fn new(_key_id: impl Into<String>, _key: &PrivateKey) -> Result<Self, JwtError> {
        Err(JwtError::InvalidSigningKey(ABSENT))
    }
}

impl JwtSigner for OpensslJwtKey {
    fn key_id(&self) -> &str {
        match *self {}
    }

    fn sign_es256(&self, _signing_input: &[u8]) -> Result<[u8; 64], JwtError> {
        match *self {}
    }
}

impl fmt::Debug for OpensslJwtKey {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}
