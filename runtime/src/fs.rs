//! Reading the small files meshid is given or keeps (config files, keys,
//! certificates, PINs, tokens, stored state) with a size bound, and
//! writing them so a reader never sees half a file ([`write_atomic`]).
//!
//! A file's length is not checked first and then read: it may grow in
//! between, and special files (`/dev/zero`, a FIFO) report no length at
//! all. [`read_to_string`] reads at most one byte past the bound, so a file
//! over it is refused whatever it is, without reading it into memory.

use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The bound for files that hold a few certificates, a key or a config:
/// 1 MiB, many times what any of them needs.
pub const MAX_SMALL_FILE: u64 = 1 << 20;

/// Why a bounded read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be opened or read (`NotFound` included).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// It holds more than `limit` bytes.
    #[error("is larger than {limit} bytes")]
    TooLarge {
        /// The bound.
        limit: u64,
    },
}

impl ReadError {
    /// True when the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

impl From<ReadError> for io::Error {
    /// For callers that report I/O errors: a file over the bound is
    /// `InvalidData` with the bound in the message.
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => e,
            e => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        }
    }
}

/// The UTF-8 text of `path`, refused when it is larger than `limit` bytes.
pub fn read_to_string(path: &Path, limit: u64) -> Result<String, ReadError> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_string(&mut text)?;
    if u64::try_from(text.len()).unwrap_or(u64::MAX) > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(text)
}

/// Writes `bytes` to `path` with `mode`: into a new temporary file of its
/// own beside it (process ID and a counter in the name, created
/// exclusively, so two writers never share one), synced, renamed over
/// `path`, then the directory synced. Readers see the old file or the new
/// one, never a part; on error the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    // A bare file name's parent is "": the working directory.
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode at creation.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_bound_and_refuses_more_or_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "abcd").unwrap();
        assert_eq!(read_to_string(&path, 4).unwrap(), "abcd");
        assert!(matches!(
            read_to_string(&path, 3),
            Err(ReadError::TooLarge { limit: 3 })
        ));
        assert!(
            read_to_string(&dir.path().join("none"), 4)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn writes_replace_whole_files_with_the_mode_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        write_atomic(&path, format!("writer {i}").as_bytes(), 0o600).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(read_to_string(&path, 64).unwrap().starts_with("writer "));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporaries left"
        );
        assert!(write_atomic(&dir.path().join("none/f"), b"x", 0o600).is_err());
    }

    #[test]
    fn an_endless_special_file_is_refused_not_read() {
        let err = read_to_string(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(matches!(err, ReadError::TooLarge { limit: 1024 }), "{err}");
    }
}
