//! Keys as PKCS#8 PEM files (`<dir>/<slot>.key.pem`, mode 0600).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use meshid_identity::PrivateKey;

use super::{KeyManager, KeyManagerError, check_slot, generate_key};

/// A [`KeyManager`] that keeps each key in a file in one directory.
#[derive(Debug, Clone)]
pub struct DiskKeyManager {
    dir: PathBuf,
}

// === impl DiskKeyManager ===

impl DiskKeyManager {
    /// Keys live in `dir` (which must exist).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
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
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
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
        let key = generate_key(slot)?;
        let path = self.path(slot);
        write_atomic(&path, key.to_pkcs8_pem().as_bytes(), 0o600).map_err(|source| {
            KeyManagerError::Write {
                path: path.display().to_string(),
                source,
            }
        })?;
        Ok(key)
    }

    fn key_ref(&self, slot: &str) -> String {
        self.path(slot).display().to_string()
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory (created with `mode`), fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    // A bare file name's parent is "": the working directory.
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
        write_atomic(&path, b"not a key", 0o600).unwrap();
        assert!(matches!(
            km.load("x509-ca"),
            Err(KeyManagerError::Unreadable { .. })
        ));
    }
}
