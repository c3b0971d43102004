//! Where the CA's private keys live: [`KeyManager`] hands out signing keys
//! by slot name. [`MemoryKeyManager`] keeps them in memory (tests, ephemeral
//! CAs); [`DiskKeyManager`] keeps them as PKCS#8 PEM files (mode 0600) in the
//! data directory, written atomically; [`Pkcs11KeyManager`] keeps the X.509
//! CA key on a PKCS#11 token. Certificates are signed through a [`CaKey`],
//! in memory (with ring, or OpenSSL: [`Signing`]) or on the token.

mod ca_key;
mod disk;
mod memory;
#[cfg(feature = "openssl")]
mod openssl;
#[cfg(not(feature = "openssl"))]
#[path = "keymanager/openssl_absent.rs"]
mod openssl;
pub mod pkcs11;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use meshid_identity::{KeyError, PrivateKey};

use crate::config::KeysConfig;

pub use ca_key::{CaKey, CaSignError};
pub use disk::DiskKeyManager;
pub use memory::MemoryKeyManager;
pub use openssl::OpensslJwtKey;
pub use pkcs11::{Pkcs11Error, Pkcs11KeyManager};

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
    /// The key of this slot is on a token: it has no in-memory form.
    #[error("the {0} key is on the PKCS#11 token; it cannot be read into memory")]
    NotInMemory(String),
    /// The token failed.
    #[error(transparent)]
    Pkcs11(#[from] Pkcs11Error),
}

/// Which library signs with the keys a key manager keeps in memory or on
/// disk (a key on a PKCS#11 token always signs on the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Signing {
    /// ring (through rcgen): `tls_backend = "rustls"`.
    #[default]
    Ring,
    /// OpenSSL's `EVP_PKEY`: `tls_backend = "openssl"`.
    Openssl,
}

/// Generates and loads the CA's signing keys, one per named slot
/// (`x509-ca`, `jwt`, …). [`load`](Self::load) and
/// [`generate`](Self::generate) give keys held in memory (a [`PrivateKey`]:
/// the JWT-SVID key); [`load_signer`](Self::load_signer) and
/// [`generate_signer`](Self::generate_signer) give certificate signing keys
/// ([`CaKey`]), which a key manager may keep on a token.
pub trait KeyManager: Send + Sync + fmt::Debug {
    /// The key in `slot`, if one was generated before.
    fn load(&self, slot: &str) -> Result<Option<PrivateKey>, KeyManagerError>;
    /// Generates a new EC P-256 key into `slot`, replacing any old one.
    fn generate(&self, slot: &str) -> Result<PrivateKey, KeyManagerError>;
    /// Where the key of `slot` lives (a path or label; never key bytes),
    /// for the store's CA key journal.
    fn key_ref(&self, slot: &str) -> String;

    /// The certificate signing key in `slot`, if there is one. By default
    /// the in-memory key of [`load`](Self::load).
    fn load_signer(&self, slot: &str) -> Result<Option<CaKey>, KeyManagerError> {
        self.load(slot)?
            .map(|k| signer(slot, &k, self.signing()))
            .transpose()
    }

    /// A new certificate signing key in `slot`. By default the in-memory
    /// key of [`generate`](Self::generate).
    fn generate_signer(&self, slot: &str) -> Result<CaKey, KeyManagerError> {
        signer(slot, &self.generate(slot)?, self.signing())
    }

    /// Which library signs with the keys this manager keeps in memory or
    /// on disk. By default ring.
    fn signing(&self) -> Signing {
        Signing::Ring
    }

    /// True when this key manager holds the X.509 CA key itself (on a
    /// token): an intermediate from files then signs with it instead of a
    /// key file. False for keys kept as files or in memory.
    fn owns_ca_key(&self) -> bool {
        false
    }

    /// The key in `slot`, generating one if there is none.
    fn load_or_generate(&self, slot: &str) -> Result<PrivateKey, KeyManagerError> {
        match self.load(slot)? {
            Some(key) => Ok(key),
            None => self.generate(slot),
        }
    }
}

/// The key manager `[keys]` asks for: keys as files in `data_dir`, or the
/// X.509 CA key on the token (other keys still in `data_dir`).
/// The keys in memory or on disk sign with `signing`.
pub fn open(
    keys: &KeysConfig,
    data_dir: &Path,
    signing: Signing,
) -> Result<Arc<dyn KeyManager>, KeyManagerError> {
    Ok(match keys.token() {
        Some(token) => Arc::new(Pkcs11KeyManager::open(token, data_dir)?.with_signing(signing)),
        None => Arc::new(DiskKeyManager::new(data_dir).with_signing(signing)),
    })
}

fn signer(slot: &str, key: &PrivateKey, signing: Signing) -> Result<CaKey, KeyManagerError> {
    CaKey::new(key, signing).map_err(|source| KeyManagerError::Generate {
        slot: slot.to_owned(),
        source,
    })
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

/// A new EC P-256 key, generated by the library that will sign with it.
fn generate_key(slot: &str, signing: Signing) -> Result<PrivateKey, KeyManagerError> {
    let key = match signing {
        Signing::Ring => PrivateKey::generate_p256(),
        Signing::Openssl => openssl::generate_p256(),
    };
    key.map_err(|source| KeyManagerError::Generate {
        slot: slot.to_owned(),
        source,
    })
}
