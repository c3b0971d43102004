//! What the upstream files hold right now, as one digest: how the CA
//! notices a replaced intermediate ([`Disk::fingerprint`]).
//!
//! Polling a content digest, not file-system events (`notify`), on
//! purpose: Kubernetes replaces a mounted Secret by swapping the `..data`
//! symlink, cert-manager and PKI scripts rename new files over old ones or
//! rewrite them in place, and inotify reports these differently (or not at
//! all on NFS and some overlay mounts). Reading the few small files the
//! upstream names, through every symlink, sees each of these the same way,
//! needs no dependency, and costs a few kilobytes of reads per interval.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{Disk, MAX_FILE};

/// A SHA-256 over the upstream's file names and contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

// === impl Disk ===

impl Disk {
    /// The digest of every file this upstream would read now (for a
    /// directory: of the files its layout names). A missing or unreadable
    /// file, or a directory in no known layout, is part of the digest too,
    /// so its repair is noticed as a change.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = Sha256::new();
        match self.files() {
            Ok(files) => {
                let roots = files.roots.iter();
                for path in files.chain.iter().chain([&files.key]).chain(roots) {
                    file_into(&mut h, path);
                }
            }
            Err(e) => h.update(format!("unusable: {e}")),
        }
        Fingerprint(h.finalize().into())
    }
}

fn file_into(h: &mut Sha256, path: &Path) {
    h.update(path.as_os_str().as_encoded_bytes());
    h.update([0]);
    let mut content = Vec::new();
    // One byte past the loader's bound: a file grown past it still changes
    // the digest, and the loader then refuses it.
    match std::fs::File::open(path).and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut content)) {
        Ok(n) => {
            h.update(u64::try_from(n).unwrap_or(u64::MAX).to_be_bytes());
            h.update(&content);
        }
        Err(e) => h.update(format!("unreadable: {:?}", e.kind())),
    }
    h.update([0]);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn changes_with_content_and_through_symlink_swaps() {
        let d = tempfile::tempdir().unwrap();
        let (v1, v2) = (d.path().join("..v1"), d.path().join("..v2"));
        for (v, text) in [(&v1, "one"), (&v2, "two")] {
            std::fs::create_dir(v).unwrap();
            for n in ["tls.crt", "tls.key", "ca.crt"] {
                std::fs::write(v.join(n), format!("{n} {text}")).unwrap();
            }
        }
        let data = d.path().join("..data");
        std::os::unix::fs::symlink("..v1", &data).unwrap();
        for n in ["tls.crt", "tls.key", "ca.crt"] {
            std::os::unix::fs::symlink(Path::new("..data").join(n), d.path().join(n)).unwrap();
        }
        let disk = Disk::from_config(&crate::config::UpstreamConfig::dir(d.path()));
        let first = disk.fingerprint();
        assert_eq!(disk.fingerprint(), first, "stable while nothing changes");
        // The swap Kubernetes does: a new `..data` link renamed over the old.
        let tmp = d.path().join("..data_tmp");
        std::os::unix::fs::symlink("..v2", &tmp).unwrap();
        std::fs::rename(&tmp, &data).unwrap();
        let second = disk.fingerprint();
        assert_ne!(second, first);
        std::fs::write(v2.join("tls.key"), "rewritten").unwrap();
        assert_ne!(disk.fingerprint(), second);
        std::fs::remove_file(d.path().join("ca.crt")).unwrap();
        let broken = disk.fingerprint();
        assert_ne!(broken, second);
        assert_eq!(disk.fingerprint(), broken);
    }
}
