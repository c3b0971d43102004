//! Where the CA's private keys live: [`KeyManager`] hands out signing keys
//! by slot name. [`MemoryKeyManager`] keeps them in memory (tests, ephemeral
//! CAs); [`DiskKeyManager`] keeps them as PKCS#8 PEM files (mode 0600) in the
//! data directory, written atomically.

mod disk;
mod memory;

use std::fmt;

use meshid_identity::{KeyError, PrivateKey};

pub use disk::DiskKeyManager;
pub(crate) use disk::write_atomic;
pub use memory::MemoryKeyManager;

/// A key manager failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyManagerError {
    /// Generating a key failed.
    #[error("generating the {slot} key failed: {source}")]
    Generate {
        /// The slot.
        slot: String,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A stored key cannot be read or parsed.
    #[error(
        "key file {path} is unreadable: {reason}; restore it from backup or delete it to generate a new key (agents must then re-attest)"
    )]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A key file cannot be written.
    #[error(
        "cannot write key file {path}: {source}; check that the data directory exists and is writable by this user"
    )]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The slot name is not usable.
    #[error("key slot {0:?} is invalid; use 1-32 chars of [a-z0-9_-]")]
    BadSlot(String),
}

/// Generates and loads the CA's signing keys, one per named slot
/// (`x509-ca`, `jwt`, …). The returned [`PrivateKey`] gives an
/// `rcgen::KeyPair` (which implements `rcgen::SigningKey`) through
/// [`PrivateKey::key_pair`] and its public key through
/// [`PrivateKey::public_key_der`].
pub trait KeyManager: Send + Sync + fmt::Debug {
    /// The key in `slot`, if one was generated before.
    fn load(&self, slot: &str) -> Result<Option<PrivateKey>, KeyManagerError>;
    /// Generates a new EC P-256 key into `slot`, replacing any old one.
    fn generate(&self, slot: &str) -> Result<PrivateKey, KeyManagerError>;
    /// Where the key of `slot` lives (a path or label; never key bytes),
    /// for the store's CA key journal.
    fn key_ref(&self, slot: &str) -> String;

    /// The key in `slot`, generating one if there is none.
    fn load_or_generate(&self, slot: &str) -> Result<PrivateKey, KeyManagerError> {
        match self.load(slot)? {
            Some(key) => Ok(key),
            None => self.generate(slot),
        }
    }
}

fn check_slot(slot: &str) -> Result<(), KeyManagerError> {
    let ok = !slot.is_empty()
        && slot.len() <= 32
        && slot
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(KeyManagerError::BadSlot(slot.chars().take(40).collect()))
    }
}

fn generate_key(slot: &str) -> Result<PrivateKey, KeyManagerError> {
    PrivateKey::generate_p256().map_err(|source| KeyManagerError::Generate {
        slot: slot.to_owned(),
        source,
    })
}
