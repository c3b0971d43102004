//! The private key a trust domain signs JWT-SVIDs with.

use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use zeroize::Zeroizing;

use super::{JwtError, JwtSigner};
use crate::JwtAuthority;
use crate::bundle::jwk::p256_spki_der_from_coordinates;

/// An EC P-256 (ES256) key that signs JWT-SVIDs, with the `kid` it
/// publishes under.
#[derive(Clone)]
pub struct JwtSigningKey {
    /// The key ID written into each token's header and the bundle.
    pub key_id: String,
    pkcs8: Zeroizing<Vec<u8>>,
    pair: Arc<EcdsaKeyPair>,
    public_spki: Vec<u8>,
}

// === impl JwtSigningKey ===

impl JwtSigningKey {
    /// Loads a P-256 private key from PKCS#8 DER.
    pub fn from_pkcs8_der(key_id: impl Into<String>, der: &[u8]) -> Result<Self, JwtError> {
        let key_id = key_id.into();
        if key_id.is_empty() {
            return Err(JwtError::InvalidSigningKey("key ID is empty"));
        }
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
                .map_err(|_| {
                JwtError::InvalidSigningKey("not an EC P-256 private key in PKCS#8 DER")
            })?;
        let point = pair.public_key().as_ref();
        let (x, y) = point
            .get(1..33)
            .zip(point.get(33..65))
            .ok_or(JwtError::InvalidSigningKey(
                "unexpected public key encoding",
            ))?;
        let public_spki = p256_spki_der_from_coordinates(x, y)
            .map_err(|_| JwtError::InvalidSigningKey("unexpected public key encoding"))?;
        Ok(Self {
            key_id,
            pkcs8: Zeroizing::new(der.to_vec()),
            pair: Arc::new(pair),
            public_spki,
        })
    }

    /// Generates a fresh P-256 key named `key_id`.
    pub fn generate(key_id: impl Into<String>) -> Result<Self, JwtError> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| JwtError::InvalidSigningKey("key generation failed"))?;
        Self::from_pkcs8_der(key_id, doc.as_ref())
    }

    /// The private key as PKCS#8 DER, for a key store to persist.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public half as the bundle entry verifiers need.
    pub fn public_authority(&self) -> JwtAuthority {
        JwtAuthority {
            key_id: self.key_id.clone(),
            public_key_der: self.public_spki.clone(),
            expires_at: None,
        }
    }
}

impl JwtSigner for JwtSigningKey {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn sign_es256(&self, signing_input: &[u8]) -> Result<[u8; 64], JwtError> {
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input)
            .map_err(|_| JwtError::Signing("ECDSA P-256 signing failed".into()))?;
        signature
            .as_ref()
            .try_into()
            .map_err(|_| JwtError::Signing("ECDSA P-256 signature is not 64 bytes".into()))
    }
}

impl std::fmt::Debug for JwtSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigningKey")
            .field("key_id", &self.key_id)
            .field("key", &"...")
            .finish()
    }
}
