//! Keys held only in memory: lost on restart.

use std::collections::HashMap;
use std::sync::Mutex;

use meshid_identity::PrivateKey;

use super::{KeyManager, KeyManagerError, Signing, check_slot, generate_key};

/// A [`KeyManager`] that keeps keys in memory only.
#[derive(Default)]
pub struct MemoryKeyManager {
    keys: Mutex<HashMap<String, PrivateKey>>,
    signing: Signing,
}

// === impl MemoryKeyManager ===

impl MemoryKeyManager {
    /// An empty key manager.
    pub fn new() -> Self {
        Self::default()
    }

    /// Its keys sign with `signing` (ring unless told otherwise).
    pub fn with_signing(mut self, signing: Signing) -> Self {
        self.signing = signing;
        self
    }
}

impl std::fmt::Debug for MemoryKeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryKeyManager(...)")
    }
}

impl KeyManager for MemoryKeyManager {
    fn load(&self, slot: &str) -> Result<Option<PrivateKey>, KeyManagerError> {
        check_slot(slot)?;
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        Ok(keys.get(slot).cloned())
    }

    fn generate(&self, slot: &str) -> Result<PrivateKey, KeyManagerError> {
        check_slot(slot)?;
        let key = generate_key(slot, self.signing)?;
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.insert(slot.to_owned(), key.clone());
        Ok(key)
    }

    fn key_ref(&self, slot: &str) -> String {
        format!("memory:{slot}")
    }

    fn signing(&self) -> Signing {
        self.signing
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generate_then_load_returns_the_same_key() {
        let km = MemoryKeyManager::new();
        assert!(km.load("x509-ca").unwrap().is_none());
        let k = km.load_or_generate("x509-ca").unwrap();
        let again = km.load_or_generate("x509-ca").unwrap();
        assert_eq!(k.public_key_der(), again.public_key_der());
        assert!(matches!(
            km.load("../etc"),
            Err(KeyManagerError::BadSlot(_))
        ));
    }
}
