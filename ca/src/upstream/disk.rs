//! An intermediate CA read from disk (enterprise mode).

use std::path::PathBuf;
use std::time::SystemTime;

use meshid_identity::x509::pem_certs;
use meshid_identity::{PrivateKey, TrustDomain};

use super::{CaMaterial, UpstreamAuthority, UpstreamError, cert_facts};
use crate::keymanager::KeyManager;

/// A signing certificate and key issued by an enterprise root.
///
/// `cert_chain_file` holds PEM certificates: the signing certificate first,
/// then any intermediates, and the enterprise root last (the root is what
/// the trust bundle publishes). `key_file` holds the signing key (PKCS#8 or
/// SEC1 P-256 PEM).
#[derive(Debug, Clone)]
pub struct Disk {
    cert_chain_file: PathBuf,
    key_file: PathBuf,
}

// === impl Disk ===

impl Disk {
    /// Reads the CA from these two files.
    pub fn new(cert_chain_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        Self {
            cert_chain_file: cert_chain_file.into(),
            key_file: key_file.into(),
        }
    }

    fn read(&self, path: &PathBuf) -> Result<String, UpstreamError> {
        std::fs::read_to_string(path).map_err(|source| UpstreamError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

impl UpstreamAuthority for Disk {
    fn kind(&self) -> &'static str {
        "disk"
    }

    fn obtain(
        &self,
        _td: &TrustDomain,
        _keys: &dyn KeyManager,
        now: SystemTime,
    ) -> Result<CaMaterial, UpstreamError> {
        let chain_path = self.cert_chain_file.display().to_string();
        let invalid = |path: &str, reason: &str| UpstreamError::Invalid {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let certs = pem_certs(&self.read(&self.cert_chain_file)?)
            .map_err(|e| invalid(&chain_path, &e.to_string()))?;
        let key_path = self.key_file.display().to_string();
        let key = PrivateKey::from_pem(&self.read(&self.key_file)?)
            .map_err(|e| invalid(&key_path, &e.to_string()))?;
        let (signing, rest) = certs
            .split_first()
            .ok_or_else(|| invalid(&chain_path, "holds no certificate"))?;
        for (i, c) in certs.iter().enumerate() {
            let (_, not_after, is_ca) = cert_facts(c)
                .ok_or_else(|| invalid(&chain_path, &format!("certificate {i} is unreadable")))?;
            if !is_ca {
                return Err(invalid(
                    &chain_path,
                    &format!("certificate {i} is not a CA (basicConstraints CA:true)"),
                ));
            }
            if not_after <= now {
                return Err(invalid(
                    &chain_path,
                    &format!("certificate {i} has expired; renew it"),
                ));
            }
        }
        let (spki, _, _) = cert_facts(signing).ok_or_else(|| invalid(&chain_path, "unreadable"))?;
        if spki != key.public_key_der() {
            return Err(invalid(
                &key_path,
                "the key does not match the first certificate of the chain",
            ));
        }
        let (root, intermediates) = match rest.split_last() {
            Some((root, mid)) => (root.clone(), mid.to_vec()),
            None => (signing.clone(), Vec::new()),
        };
        Ok(CaMaterial {
            signing_cert: signing.clone(),
            intermediates,
            roots: vec![root],
            key,
            key_ref: key_path,
        })
    }
}
