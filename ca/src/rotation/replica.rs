//! Which CA replica this is: the name its key slots and the rotation lease
//! carry in the shared store.
//!
//! `[ha] replica_id` in the config wins; without it the ID is read from
//! `<data_dir>/replica-id`, which the first start writes (`ca-` and 8
//! random lowercase hex digits) and every later start reuses, so a replica
//! keeps its slots across restarts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use meshid_runtime::fs::write_atomic;

/// The file in the data directory that keeps a generated replica ID.
pub const REPLICA_ID_FILE: &str = "replica-id";

/// Longest replica ID.
pub const MAX_REPLICA_ID_LEN: usize = 32;

/// Largest replica ID file read (an ID and a newline, with room to spare).
const MAX_FILE: u64 = 256;

/// A CA replica's ID: 1 to 32 of `a-z`, `0-9` and `-`. A value of this
/// type is always valid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct ReplicaId(String);

/// Why a replica ID could not be parsed, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaIdError {
    /// Not 1..=32 of `[a-z0-9-]`.
    #[error(
        "replica ID {value:?} is invalid: use 1 to {MAX_REPLICA_ID_LEN} characters of a-z, 0-9 and -"
    )]
    Invalid {
        /// The refused value (cut to a printable length).
        value: String,
    },
    /// The ID file exists but does not hold a valid ID.
    #[error(
        "{path} does not hold a valid replica ID ({reason}); fix it, or delete it to have a \
         new ID generated (the old ID's key slots then stay behind in the store), or set \
         [ha] replica_id"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The ID file could not be read or written.
    #[error("replica ID file {path}: {source}; check the data directory's permissions")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

// === impl ReplicaId ===

impl ReplicaId {
    /// Parses `s` (exactly: no surrounding whitespace).
    pub fn parse(s: &str) -> Result<Self, ReplicaIdError> {
        let ok = (1..=MAX_REPLICA_ID_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ReplicaIdError::Invalid {
                value: s.chars().take(MAX_REPLICA_ID_LEN + 8).collect(),
            })
        }
    }

    /// A new random ID: `ca-` and 8 lowercase hex digits.
    pub fn generate() -> Self {
        Self(format!("ca-{}", hex::encode(rand::random::<[u8; 4]>())))
    }

    /// The configured ID if there is one, else the one kept in
    /// `<data_dir>/replica-id`, generated and written there (mode 0644,
    /// atomically) on first use. A file that does not hold a valid ID is
    /// an error, never silently replaced: the ID names this replica's
    /// slots in the shared store.
    pub fn resolve(
        configured: Option<&ReplicaId>,
        data_dir: &Path,
    ) -> Result<Self, ReplicaIdError> {
        if let Some(id) = configured {
            return Ok(id.clone());
        }
        let path = data_dir.join(REPLICA_ID_FILE);
        if let Some(id) = Self::read(&path)? {
            return Ok(id);
        }
        let id = Self::generate();
        write_atomic(&path, format!("{id}\n").as_bytes(), 0o644)
            .map_err(|source| ReplicaIdError::Io { path, source })?;
        Ok(id)
    }

    /// The ID kept in `path`; `None` if there is no such file. One
    /// trailing newline is allowed.
    fn read(path: &Path) -> Result<Option<Self>, ReplicaIdError> {
        let corrupt = |reason: String| ReplicaIdError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let text = match meshid_runtime::fs::read_to_string(path, MAX_FILE) {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(meshid_runtime::fs::ReadError::Io(e))
                if e.kind() != std::io::ErrorKind::InvalidData =>
            {
                return Err(ReplicaIdError::Io {
                    path: path.to_owned(),
                    source: e,
                });
            }
            // Too large, or not UTF-8.
            Err(e) => return Err(corrupt(e.to_string())),
        };
        let line = text.strip_suffix('\n').unwrap_or(&text);
        Self::parse(line)
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ReplicaId {
    type Err = ReplicaIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ReplicaId {
    type Error = ReplicaIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ReplicaId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn ids_are_lowercase_letters_digits_and_dashes_up_to_32() {
        for ok in ["a", "ca-0123abcd", "replica-2", &"x".repeat(32)] {
            assert_eq!(ReplicaId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "CA-1",
            "ca_1",
            "ca 1",
            " ca",
            "ca\n",
            "ca/1",
            "é",
            &"x".repeat(33),
        ] {
            assert!(ReplicaId::parse(bad).is_err(), "{bad:?}");
        }
        for _ in 0..16 {
            let id = ReplicaId::generate();
            assert_eq!(id.as_str().len(), 11, "{id}");
            assert!(id.as_str().starts_with("ca-"), "{id}");
            assert_eq!(ReplicaId::parse(id.as_str()).unwrap(), id);
        }
    }

    #[test]
    fn first_start_writes_a_generated_id_and_later_starts_reuse_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = ReplicaId::resolve(None, dir.path()).unwrap();
        let path = dir.path().join(REPLICA_ID_FILE);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{first}\n")
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(ReplicaId::resolve(None, dir.path()).unwrap(), first);

        // A file written by an operator without a newline is read too.
        std::fs::write(&path, "replica-b").unwrap();
        assert_eq!(
            ReplicaId::resolve(None, dir.path()).unwrap().as_str(),
            "replica-b"
        );
    }

    #[test]
    fn the_configured_id_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(REPLICA_ID_FILE), "from-file\n").unwrap();
        let configured = ReplicaId::parse("from-config").unwrap();
        assert_eq!(
            ReplicaId::resolve(Some(&configured), dir.path()).unwrap(),
            configured
        );
        let empty = tempfile::tempdir().unwrap();
        ReplicaId::resolve(Some(&configured), empty.path()).unwrap();
        assert!(!empty.path().join(REPLICA_ID_FILE).exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REPLICA_ID_FILE);
        for bad in [
            b"".as_slice(),
            b"\n",
            b"Replica-A\n",
            b"ca-1\n\n",
            b"\xff\xfe",
            &[b'a'; 300],
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = ReplicaId::resolve(None, dir.path()).unwrap_err();
            assert!(matches!(e, ReplicaIdError::Corrupt { .. }), "{bad:?}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("[ha] replica_id"), "{msg}");
            assert_eq!(std::fs::read(&path).unwrap(), bad, "left as it was");
        }
    }

    #[test]
    fn an_unwritable_data_dir_is_an_io_error() {
        let e = ReplicaId::resolve(None, Path::new("/nonexistent/meshid-ca")).unwrap_err();
        assert!(matches!(e, ReplicaIdError::Io { .. }), "{e}");
        assert!(
            e.to_string().contains("/nonexistent/meshid-ca/replica-id"),
            "{e}"
        );
    }
}
