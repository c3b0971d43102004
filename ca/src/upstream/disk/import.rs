//! Activating an intermediate the PKI team signed (`meshid ca import`):
//! the given files pass the very checks the CA runs at start-up, then are
//! written into the upstream directory in Istio's plug-in layout, where a
//! running CA picks them up.
//!
//! Each file is replaced atomically, the signing certificate last. Until
//! it lands, the directory holds the old certificate with some new files,
//! which never validates (the key does not match, or the chain holds a
//! certificate that does not link), so a CA reloading midway keeps the
//! intermediate it has; once it lands, the new set is complete.
//!
//! With the key on a token ([`Import::run_with_keys`] and a key manager
//! that owns the CA key), no key file exists: the checks sign with the
//! token's key, and only `root-cert.pem` then `cert-chain.pem` are written,
//! for `[upstream] root_file` and `cert_chain_file`.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use meshid_identity::x509::to_pem;
use meshid_identity::{PrivateKey, TrustDomain};
use rustls_pki_types::CertificateDer;

use super::cert::ChainCert;
use super::layout::{Files, ISTIO, KUBERNETES};
use super::{Disk, Source, read};
use crate::keymanager::{KeyManager, MemoryKeyManager};
use crate::upstream::{CaMaterial, UpstreamAuthority, UpstreamError};
use meshid_runtime::fs::write_atomic;

/// The mode of the key in the directory.
const KEY_MODE: u32 = 0o600;
/// The mode of the certificate files.
const CERT_MODE: u32 = 0o644;
/// The mode of a directory import creates (it holds a private key).
const DIR_MODE: u32 = 0o700;

/// What `meshid ca import` was given.
#[derive(Debug, Clone)]
pub struct Import {
    /// The signed intermediate (PEM; more certificates above it may follow).
    pub cert: PathBuf,
    /// The CAs between the intermediate and the root, if any (PEM, any order).
    pub chain: Option<PathBuf>,
    /// The enterprise root(s) (PEM); one must anchor the chain.
    pub roots: PathBuf,
    /// The intermediate's key; `None`: the directory's `ca-key.pem`.
    pub key: Option<PathBuf>,
    /// The upstream directory to write (created if missing).
    pub dir: PathBuf,
    /// Warn when the chain expires sooner than this (as at start-up).
    pub min_remaining: Duration,
}

/// Why an import did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// A check failed (the same message the CA gives at start-up); the
    /// directory was not touched.
    #[error("{0}; nothing was written")]
    Refused(UpstreamError),
    /// Writing failed part way; the signing certificate was not replaced,
    /// so a running CA keeps its current intermediate.
    #[error(
        "{0}; the directory is partly updated (a running CA keeps its current intermediate); \
         fix this and import again"
    )]
    Partial(UpstreamError),
    /// Every file was written, but the directory read back as the CA reads
    /// it does not validate (something else changed it meanwhile).
    #[error(
        "the files were written, but the directory does not validate as the CA reads it: {0}; \
         check what else writes to it, then import again"
    )]
    ReadBack(UpstreamError),
}

/// What was activated.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The intermediate's subject (`CN=…, O=…`).
    pub subject: String,
    /// Its issuer's subject.
    pub issuer: String,
    /// Its notAfter.
    pub not_after: SystemTime,
    /// The files written, in the order they were written.
    pub files: Vec<PathBuf>,
}

fn invalid(path: &Path, reason: String) -> UpstreamError {
    UpstreamError::Invalid {
        path: path.display().to_string(),
        reason,
    }
}

// === impl Import ===

impl Import {
    /// The key file to read: `key`, else the directory's `ca-key.pem`.
    pub fn key_path(&self) -> PathBuf {
        self.key.clone().unwrap_or_else(|| self.dir.join(ISTIO[1]))
    }

    /// Checks the files for SVIDs of `td` at `now`, then writes them into
    /// the directory. Writes nothing when a check fails.
    pub fn run(&self, td: &TrustDomain, now: SystemTime) -> Result<Imported, ImportError> {
        self.run_with_keys(td, &MemoryKeyManager::new(), now)
    }

    /// [`run`](Self::run) with the CA's key manager: when it holds the CA
    /// key itself (a PKCS#11 token), the intermediate must match the
    /// token's key and no key file is read or written; the directory then
    /// gets `root-cert.pem` and `cert-chain.pem` only.
    pub fn run_with_keys(
        &self,
        td: &TrustDomain,
        keys: &dyn KeyManager,
        now: SystemTime,
    ) -> Result<Imported, ImportError> {
        if keys.owns_ca_key() {
            return self.run_on_token(td, keys, now);
        }
        let (material, key, imported) = self.check(td, now).map_err(ImportError::Refused)?;
        self.check_dir().map_err(ImportError::Refused)?;
        let files = self.write(&material, Some(&key))?;
        // Read back as the CA will read the directory.
        let written = Disk {
            source: Source::Dir(self.dir.clone()),
            min_remaining: self.min_remaining,
        };
        written
            .obtain(td, &MemoryKeyManager::new(), now)
            .map_err(ImportError::ReadBack)?;
        Ok(Imported { files, ..imported })
    }

    /// The files the CA reads when its key is on a token: (chain, roots).
    pub fn token_files(&self) -> (PathBuf, PathBuf) {
        (self.dir.join(ISTIO[2]), self.dir.join(ISTIO[3]))
    }

    fn run_on_token(
        &self,
        td: &TrustDomain,
        keys: &dyn KeyManager,
        now: SystemTime,
    ) -> Result<Imported, ImportError> {
        let refused = ImportError::Refused;
        if self.key.is_some() {
            return Err(refused(invalid(
                &self.key_path(),
                "is a key file, but the CA key is on the token ([keys] manager = \"pkcs11\"); \
                 leave out --key"
                    .into(),
            )));
        }
        let given = self.given(td, keys, now).map_err(refused)?;
        let (material, imported) = given;
        self.check_dir().map_err(refused)?;
        let key_file = self.dir.join(ISTIO[1]);
        if key_file.exists() {
            return Err(refused(invalid(
                &key_file,
                "is a key file in the upstream directory, but the CA key is on the token; \
                 import into a directory without one"
                    .into(),
            )));
        }
        let files = self.write(&material, None)?;
        let (chain, roots) = self.token_files();
        let written = Disk {
            source: Source::Files(Files {
                chain: vec![chain],
                key: PathBuf::new(),
                roots: Some(roots),
            }),
            min_remaining: self.min_remaining,
        };
        written
            .obtain(td, keys, now)
            .map_err(ImportError::ReadBack)?;
        Ok(Imported { files, ..imported })
    }

    /// The given files, checked as the CA checks them at start-up: the
    /// material, the key as read, and what to report.
    fn check(
        &self,
        td: &TrustDomain,
        now: SystemTime,
    ) -> Result<(CaMaterial, PrivateKey, Imported), UpstreamError> {
        let (material, imported) = self.given(td, &MemoryKeyManager::new(), now)?;
        let key = self.read_key()?;
        if material.key.public_key_der() != key.public_key_der() {
            return Err(invalid(
                &self.key_path(),
                "was replaced while it was being checked; run import again".into(),
            ));
        }
        Ok((material, key, imported))
    }

    /// The given files through the start-up checks, signing with `keys`'
    /// CA key when it owns one (else with the key file): the material and
    /// what to report.
    fn given(
        &self,
        td: &TrustDomain,
        keys: &dyn KeyManager,
        now: SystemTime,
    ) -> Result<(CaMaterial, Imported), UpstreamError> {
        let given = Disk {
            source: Source::Files(Files {
                chain: std::iter::once(self.cert.clone())
                    .chain(self.chain.clone())
                    .collect(),
                key: self.key_path(),
                roots: Some(self.roots.clone()),
            }),
            min_remaining: self.min_remaining,
        };
        let material = given.obtain(td, keys, now)?;
        if material.signing_cert_is_root() {
            return Err(invalid(
                &self.cert,
                "is a root; import the intermediate the root signed, not the root itself".into(),
            ));
        }
        let signing = self.facts(&material.signing_cert)?;
        let issuer = match material.intermediates.first().or(material.roots.first()) {
            Some(c) => self.facts(c)?.subject,
            None => String::new(),
        };
        let imported = Imported {
            subject: signing.subject,
            issuer,
            not_after: signing.not_after,
            files: Vec::new(),
        };
        Ok((material, imported))
    }

    fn facts(&self, der: &CertificateDer<'static>) -> Result<ChainCert, UpstreamError> {
        ChainCert::parse(der.clone(), &self.cert.display().to_string(), 0)
    }

    /// The key, read once: what is checked is what gets written.
    fn read_key(&self) -> Result<PrivateKey, UpstreamError> {
        let path = self.key_path();
        PrivateKey::from_pem(&read(&path)?).map_err(|e| invalid(&path, e.to_string()))
    }

    /// The directory exists (or is created) and holds no Kubernetes Secret
    /// files, which would make its layout ambiguous.
    fn check_dir(&self) -> Result<(), UpstreamError> {
        let io = |source| UpstreamError::Io {
            path: self.dir.display().to_string(),
            source,
        };
        if self.dir.exists() && !self.dir.is_dir() {
            return Err(invalid(
                &self.dir,
                "is not a directory; give the upstream directory".into(),
            ));
        }
        if !self.dir.exists() {
            return std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(&self.dir)
                .map_err(io);
        }
        let foreign: Vec<&str> = KUBERNETES
            .into_iter()
            .filter(|n| self.dir.join(n).exists())
            .collect();
        if !foreign.is_empty() {
            return Err(invalid(
                &self.dir,
                format!(
                    "holds a Kubernetes TLS Secret's files ({}); import writes Istio's plug-in \
                     layout ({}), so give an empty directory or one in that layout",
                    foreign.join(", "),
                    ISTIO.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Writes roots, chain and key, then the signing certificate.
    /// A failure before the first file landed is [`ImportError::Refused`]
    /// (nothing was written), a later one [`ImportError::Partial`].
    /// Without a key (it is on a token), only roots and chain are written,
    /// the chain (which starts with the signing certificate) last.
    fn write(&self, m: &CaMaterial, key: Option<&PrivateKey>) -> Result<Vec<PathBuf>, ImportError> {
        // ISTIO: (signing cert, key, chain to the root, roots).
        let [cert, key_file, chain, roots] = ISTIO.map(|n| self.dir.join(n));
        let roots_pem = to_pem(&m.roots);
        let chain_pem = to_pem(&m.full_chain());
        let key_pem = key.map(PrivateKey::to_pkcs8_pem);
        let cert_pem = to_pem(std::slice::from_ref(&m.signing_cert));
        let mut steps: Vec<(&Path, &[u8], u32)> = vec![
            (&roots, roots_pem.as_bytes(), CERT_MODE),
            (&chain, chain_pem.as_bytes(), CERT_MODE),
        ];
        if let Some(key_pem) = &key_pem {
            // A key already in the directory stays as it is.
            if self.key.as_deref().is_some_and(|k| k != key_file) {
                steps.push((&key_file, key_pem.as_bytes(), KEY_MODE));
            }
            steps.push((&cert, cert_pem.as_bytes(), CERT_MODE));
        }
        let mut written = Vec::new();
        for (path, bytes, mode) in steps {
            if let Err(source) = write_atomic(path, bytes, mode) {
                let e = UpstreamError::Io {
                    path: path.display().to_string(),
                    source,
                };
                return Err(if written.is_empty() {
                    ImportError::Refused(e)
                } else {
                    ImportError::Partial(e)
                });
            }
            written.push(path.to_path_buf());
        }
        Ok(written)
    }
}
