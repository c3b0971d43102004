//! The agent's identity on disk: key, SVID chain and trust bundle in the
//! data directory, each written atomically with mode 0600.
//!
//! Only the attestor writes here ([`super::Attestor`]: attestation,
//! renewal, and the bundle the SVID manager hands it after a sync).
//! Each write still goes through its own temporary file (process ID and a
//! counter in the name), so two writes can never rename each other's half
//! written file into place.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use meshid_identity::{PrivateKey, TrustBundle, TrustDomain};
use rustls_pki_types::CertificateDer;

use super::AttestError;

/// The agent's private key (PKCS#8 PEM).
pub const KEY_FILE: &str = "agent-key.pem";
/// The agent SVID chain (PEM, leaf first).
pub const SVID_FILE: &str = "agent-svid.pem";
/// The own trust domain's bundle (SPIFFE bundle JSON).
pub const BUNDLE_FILE: &str = "bundle.json";
/// Largest file read back from the data directory.
const MAX_FILE_LEN: u64 = 1024 * 1024;

/// What is stored.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The agent key.
    pub key: PrivateKey,
    /// The agent SVID chain.
    pub chain: Vec<CertificateDer<'static>>,
    /// The trust bundle.
    pub bundle: TrustBundle,
}

/// Reads the stored identity; `Ok(None)` when the key or SVID is absent.
pub fn load(dir: &Path, td: &TrustDomain) -> Result<Option<Stored>, AttestError> {
    let (Some(key), Some(svid), Some(bundle)) = (
        read(&dir.join(KEY_FILE))?,
        read(&dir.join(SVID_FILE))?,
        read(&dir.join(BUNDLE_FILE))?,
    ) else {
        return Ok(None);
    };
    let corrupt = |file: &str, reason: String| AttestError::Corrupt {
        path: dir.join(file),
        reason,
    };
    let key = PrivateKey::from_pem(&key).map_err(|e| corrupt(KEY_FILE, e.to_string()))?;
    let chain =
        meshid_identity::x509::pem_certs(&svid).map_err(|e| corrupt(SVID_FILE, e.to_string()))?;
    let bundle = TrustBundle::from_spiffe_json(td.clone(), bundle.as_bytes())
        .map_err(|e| corrupt(BUNDLE_FILE, e.to_string()))?;
    Ok(Some(Stored { key, chain, bundle }))
}

/// Writes the key, SVID and bundle.
pub fn save(dir: &Path, s: &Stored) -> Result<(), AttestError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| AttestError::Store {
            path: dir.to_owned(),
            source,
        })?;
    write_atomic(&dir.join(KEY_FILE), s.key.to_pkcs8_pem().as_bytes())?;
    write_atomic(
        &dir.join(SVID_FILE),
        meshid_identity::x509::to_pem(&s.chain).as_bytes(),
    )?;
    save_bundle(dir, &s.bundle)
}

/// Writes only the bundle (after the CA rotated its roots).
pub fn save_bundle(dir: &Path, bundle: &TrustBundle) -> Result<(), AttestError> {
    write_atomic(&dir.join(BUNDLE_FILE), bundle.to_spiffe_json().as_bytes())
}

fn read(path: &Path) -> Result<Option<String>, AttestError> {
    let err = |source| AttestError::Store {
        path: path.to_owned(),
        source,
    };
    match meshid_runtime::fs::read_to_string(path, MAX_FILE_LEN) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(meshid_runtime::fs::ReadError::Io(e)) => Err(err(e)),
        Err(e) => Err(AttestError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// Writes `bytes` to `path` (0600) through runtime's one atomic write.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AttestError> {
    meshid_runtime::fs::write_atomic(path, bytes, 0o600).map_err(|source| AttestError::Store {
        path: path.to_owned(),
        source,
    })
}
