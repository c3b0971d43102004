//! Keys as PKCS#8 PEM files (`<dir>/<slot>.key.pem`, mode 0600).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use meshid_identity::PrivateKey;

use super::{KeyManager, KeyManagerError, Signing, check_slot, generate_key};

/// A [`KeyManager`] that keeps each key in a file in one directory.
#[derive(Debug, Clone)]
pub struct DiskKeyManager {
    dir: PathBuf,
    signing: Signing,
}

// === impl DiskKeyManager ===

impl DiskKeyManager {
    /// Keys live in `dir` (which must exist).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            signing: Signing::Ring,
        }
    }

    /// Its keys sign with `signing` (ring unless told otherwise).
    pub fn with_signing(mut self, signing: Signing) -> Self {
        self.signing = signing;
        self
    }

    fn path(&self, slot: &str) -> PathBuf {
        self.dir.join(format!("{slot}.key.pem"))
    }
}

impl KeyManager for DiskKeyManager {
    fn load(&self, slot: &str) -> Result<Option<PrivateKey>, KeyManagerError> {
        check_slot(slot)?;
        let path = self.path(slot);
        let unreadable = |reason: String| KeyManagerError::Unreadable {
            path: path.display().to_string(),
            reason,
        };
        let text =
            match meshid_runtime::fs::read_to_string(&path, meshid_runtime::fs::MAX_SMALL_FILE) {
                Ok(t) => t,
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(unreadable(e.to_string())),
            };
        let mode = fs::metadata(&path)
            .map_err(|e| unreadable(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(unreadable(format!(
                "its mode is {:o}; other users may read it (chmod 600 it)",
                mode & 0o777
            )));
        }
        PrivateKey::from_pem(&text)
            .map(Some)
            .map_err(|e| unreadable(e.to_string()))
    }

    fn generate(&self, slot: &str) -> Result<PrivateKey, KeyManagerError> {
        check_slot(slot)?;
        let key = generate_key(slot, self.signing)?;
        let path = self.path(slot);
        meshid_runtime::fs::write_atomic(&path, key.to_pkcs8_pem().as_bytes(), 0o600).map_err(
            |source| KeyManagerError::Write {
                path: path.display().to_string(),
                source,
            },
        )?;
        Ok(key)
    }

    fn key_ref(&self, slot: &str) -> String {
        self.path(slot).display().to_string()
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
    fn keys_survive_a_new_manager_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let km = DiskKeyManager::new(dir.path());
        let k = km.generate("jwt").unwrap();
        let path = dir.path().join("jwt.key.pem");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = DiskKeyManager::new(dir.path())
            .load("jwt")
            .unwrap()
            .unwrap();
        assert_eq!(k.public_key_der(), again.public_key_der());
    }

    #[test]
    fn world_readable_or_garbage_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let km = DiskKeyManager::new(dir.path());
        km.generate("x509-ca").unwrap();
        let path = dir.path().join("x509-ca.key.pem");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            km.load("x509-ca"),
            Err(KeyManagerError::Unreadable { .. })
        ));
        meshid_runtime::fs::write_atomic(&path, b"not a key", 0o600).unwrap();
        assert!(matches!(
            km.load("x509-ca"),
            Err(KeyManagerError::Unreadable { .. })
        ));
    }
}
