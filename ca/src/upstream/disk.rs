//! An intermediate CA read from disk (enterprise mode), validated in full
//! before it signs anything.
//!
//! - `layout`: which files: named one by one, or a directory in Istio's
//!   plug-in CA layout or a Kubernetes TLS Secret's.
//! - `cert`: the facts about each certificate the checks need.
//! - `validate`: ordering the chain up to its root and the start-up checks.
//! - `import`: the given files, checked as at start-up, written into a
//!   directory in Istio's layout (`meshid ca import`).
//! - `fingerprint`: a digest of what the files hold now, to notice a
//!   replacement.

mod cert;
mod fingerprint;
mod import;
mod layout;
mod validate;

pub use fingerprint::Fingerprint;
pub use import::{Import, ImportError, Imported};

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use meshid_identity::x509::pem_certs;
use meshid_identity::{PrivateKey, TrustDomain};

use super::CA_KEY_SLOT;
use super::{CaMaterial, UpstreamAuthority, UpstreamError};
use crate::config::UpstreamConfig;
use crate::keymanager::{CaKey, KeyManager};
use cert::ChainCert;
use layout::Files;

/// A signing certificate and key issued by an enterprise root.
///
/// The chain files hold PEM certificates, the signing certificate first,
/// then the CAs above it in any order (the root may be included); the roots
/// come from the root file when one is given, else from the self-signed
/// certificates of the chain. A chain with no root is refused: the bundle
/// must publish the enterprise root, never the intermediate. The key is
/// PKCS#8, SEC1 (P-256, P-384) or PKCS#1 (RSA) PEM.
#[derive(Debug, Clone)]
pub struct Disk {
    source: Source,
    min_remaining: Duration,
}

#[derive(Debug, Clone)]
enum Source {
    Files(Files),
    Dir(PathBuf),
}

// === impl Disk ===

impl Disk {
    /// Reads the CA from a chain file and a key file (the root last in the
    /// chain).
    pub fn new(cert_chain_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        Self {
            source: Source::Files(Files {
                chain: vec![cert_chain_file.into()],
                key: key_file.into(),
                roots: None,
            }),
            min_remaining: crate::config::DEFAULT_MIN_REMAINING,
        }
    }

    /// Reads the CA from the files or directory `config` names.
    pub fn from_config(config: &UpstreamConfig) -> Self {
        let source = match (&config.dir, &config.cert_chain_file, &config.key_file) {
            (Some(dir), _, _) => Source::Dir(dir.clone()),
            (None, chain, key) => Source::Files(Files {
                chain: chain.iter().cloned().collect(),
                key: key.clone().unwrap_or_default(),
                roots: config.root_file.clone(),
            }),
        };
        Self {
            source,
            min_remaining: config.min_remaining,
        }
    }

    fn files(&self) -> Result<Files, UpstreamError> {
        match &self.source {
            Source::Files(f) => Ok(f.clone()),
            Source::Dir(d) => layout::detect(d),
        }
    }
}

/// The signing key: the key manager's when it holds the CA key itself (a
/// token), else the key file's.
fn signing_key(files: &Files, keys: &dyn KeyManager) -> Result<(CaKey, String), UpstreamError> {
    if keys.owns_ca_key() {
        let key_ref = keys.key_ref(CA_KEY_SLOT);
        return match keys.load_signer(CA_KEY_SLOT)? {
            Some(key) => Ok((key, key_ref)),
            None => Err(UpstreamError::Invalid {
                path: key_ref,
                reason: "the intermediate's key is not on the token; make it there with \
                         `meshid ca csr --hsm` and have the enterprise root sign that CSR, or \
                         fix keys.pkcs11.key_label"
                    .into(),
            }),
        };
    }
    let key_path = files.key.display().to_string();
    let invalid = |reason: String| UpstreamError::Invalid {
        path: key_path.clone(),
        reason,
    };
    let private = PrivateKey::from_pem(&read(&files.key)?).map_err(|e| invalid(e.to_string()))?;
    let key = CaKey::new(&private, keys.signing()).map_err(|e| invalid(e.to_string()))?;
    Ok((key, key_path))
}

/// The largest certificate or key file the CA reads (a chain of a few
/// certificates is a few kilobytes); the fingerprint reads no more either.
pub(super) const MAX_FILE: u64 = meshid_runtime::fs::MAX_SMALL_FILE;

/// The file's text, refused when it is larger than [`MAX_FILE`].
fn read(path: &Path) -> Result<String, UpstreamError> {
    meshid_runtime::fs::read_to_string(path, MAX_FILE).map_err(|e| file_error(path, e))
}

/// A bounded read's failure as the upstream reports it, naming the file.
pub(crate) fn file_error(path: &Path, e: meshid_runtime::fs::ReadError) -> UpstreamError {
    let path = path.display().to_string();
    match e {
        meshid_runtime::fs::ReadError::Io(source) => UpstreamError::Io { path, source },
        e => UpstreamError::Invalid {
            path,
            reason: format!("{e}; give only the PEM certificates or key it should hold"),
        },
    }
}

/// Every certificate of `path`, parsed.
fn read_certs(path: &Path) -> Result<Vec<ChainCert>, UpstreamError> {
    let file = path.display().to_string();
    let certs = pem_certs(&read(path)?).map_err(|e| UpstreamError::Invalid {
        path: file.clone(),
        reason: format!("{e}; expected PEM CERTIFICATE blocks only"),
    })?;
    if certs.is_empty() {
        return Err(UpstreamError::Invalid {
            path: file,
            reason: "holds no certificate".into(),
        });
    }
    certs
        .into_iter()
        .enumerate()
        .map(|(i, der)| ChainCert::parse(der, &file, i))
        .collect()
}

impl UpstreamAuthority for Disk {
    fn kind(&self) -> &'static str {
        "disk"
    }

    fn obtain(
        &self,
        td: &TrustDomain,
        keys: &dyn KeyManager,
        now: SystemTime,
    ) -> Result<CaMaterial, UpstreamError> {
        let files = self.files()?;
        let mut chain = Vec::new();
        for f in &files.chain {
            chain.extend(read_certs(f)?);
        }
        let roots = match &files.roots {
            Some(f) => read_certs(f)?,
            None => Vec::new(),
        };
        let (key, key_path) = signing_key(&files, keys)?;
        let roots_file = files.roots.as_ref().map(|p| p.display().to_string());
        let ordered = validate::order(chain, roots, roots_file.as_deref())?;
        ordered.check(td, &key, &key_path, now, self.min_remaining)?;
        let mut path = ordered.path.into_iter().map(|c| c.der);
        let signing_cert = path.next().ok_or_else(|| UpstreamError::Invalid {
            path: key_path.clone(),
            reason: "no signing certificate".into(),
        })?;
        let roots: Vec<_> = ordered.roots.into_iter().map(|c| c.der).collect();
        // A self-signed signing certificate is its own root: nothing between.
        let intermediates = if roots.contains(&signing_cert) {
            Vec::new()
        } else {
            path.collect()
        };
        Ok(CaMaterial {
            signing_cert,
            intermediates,
            roots,
            key,
            key_ref: key_path,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_file_larger_than_the_bound_is_refused_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let big = d.path().join("chain.pem");
        std::fs::write(&big, vec![b'A'; usize::try_from(MAX_FILE).unwrap() + 1]).unwrap();
        let e = read(&big).unwrap_err().to_string();
        assert!(
            e.contains("chain.pem") && e.contains("is larger than"),
            "{e}"
        );
        let ok = d.path().join("small.pem");
        std::fs::write(&ok, "x").unwrap();
        assert_eq!(read(&ok).unwrap(), "x");
    }
}
