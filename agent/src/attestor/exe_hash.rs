//! SHA-256 of a process's executable, streamed, size-bounded and cached by
//! file identity so a busy binary is hashed once.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Default limit on the size of an executable we hash (512 MiB).
pub const DEFAULT_MAX_HASH_BYTES: u64 = 512 * 1024 * 1024;
/// Cached digests kept before the cache is emptied.
const MAX_CACHE_ENTRIES: usize = 4096;

/// What identifies a file's content without reading it: if any of these
/// changes, the file is hashed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Hashes executables with SHA-256 and remembers the results.
#[derive(Debug)]
pub struct ExeHasher {
    max_bytes: u64,
    cache: Mutex<HashMap<FileKey, String>>,
}

// === impl ExeHasher ===

impl ExeHasher {
    /// A hasher that refuses files larger than `max_bytes`.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Lower-case hex SHA-256 of the file at `path` (for a process, open
    /// `/proc/<pid>/exe` to get the very file it runs). `Ok(None)` if the
    /// file is larger than the limit.
    pub fn hash(&self, path: &Path) -> io::Result<Option<String>> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "executable is not a regular file",
            ));
        }
        if meta.len() > self.max_bytes {
            return Ok(None);
        }
        let key = FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        };
        if let Some(hex) = self.cached(&key) {
            return Ok(Some(hex));
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut reader = file.take(self.max_bytes + 1);
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += n as u64;
            hasher.update(&buf[..n]);
        }
        if total > self.max_bytes {
            // The file grew while we read it.
            return Ok(None);
        }
        let hex = hex::encode(hasher.finalize());
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, hex.clone());
        }
        Ok(Some(hex))
    }

    fn cached(&self, key: &FileKey) -> Option<String> {
        self.cache.lock().ok()?.get(key).cloned()
    }
}

impl Default for ExeHasher {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_HASH_BYTES)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hashes_known_content_and_respects_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let h = ExeHasher::new(3);
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(h.hash(&path).unwrap().as_deref(), Some(expected));
        // Second call is served from the cache and agrees.
        assert_eq!(h.hash(&path).unwrap().as_deref(), Some(expected));
        std::fs::write(&path, b"abcd").unwrap();
        assert_eq!(h.hash(&path).unwrap(), None);
    }

    #[test]
    fn directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ExeHasher::default().hash(dir.path()).is_err());
    }
}
