//! A self-signed root kept in the data directory.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use meshid_identity::x509::{pem_certs, self_signed_ca, to_pem};
use meshid_identity::{CaTemplate, TrustDomain};

use super::{CaMaterial, UpstreamAuthority, UpstreamError, cert_facts};
use crate::keymanager::KeyManager;
use meshid_runtime::fs::write_atomic;

/// The key manager slot of the X.509 CA key.
pub const CA_KEY_SLOT: &str = "x509-ca";

/// A self-signed EC P-256 root: generated on first start, reused after.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    cert_path: PathBuf,
    ttl: Duration,
}

// === impl SelfSigned ===

impl SelfSigned {
    /// The root certificate lives at `<data_dir>/ca.crt.pem`; a new root is
    /// valid for `ttl`.
    pub fn new(data_dir: impl Into<PathBuf>, ttl: Duration) -> Self {
        Self {
            cert_path: data_dir.into().join("ca.crt.pem"),
            ttl,
        }
    }

    fn existing(
        &self,
        keys: &dyn KeyManager,
        now: SystemTime,
    ) -> Result<Option<CaMaterial>, UpstreamError> {
        let Some(key) = keys.load_signer(CA_KEY_SLOT)? else {
            return Ok(None);
        };
        let text = match meshid_runtime::fs::read_to_string(
            &self.cert_path,
            meshid_runtime::fs::MAX_SMALL_FILE,
        ) {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(super::disk::file_error(&self.cert_path, e)),
        };
        let invalid = |reason: &str| UpstreamError::Invalid {
            path: self.cert_path.display().to_string(),
            reason: format!(
                "{reason}; delete it (and {}) to create a new root",
                keys.key_ref(CA_KEY_SLOT)
            ),
        };
        let certs = pem_certs(&text).map_err(|e| invalid(&e.to_string()))?;
        let [cert] = certs.as_slice() else {
            return Err(invalid("expected exactly one certificate"));
        };
        let (spki, not_after, _) =
            cert_facts(cert).ok_or_else(|| invalid("not a readable certificate"))?;
        if spki != key.public_key_der() {
            return Err(invalid("the certificate does not match the CA key"));
        }
        if not_after <= now {
            tracing::warn!(path = %self.cert_path.display(), "self-signed root expired; creating a new one");
            return Ok(None);
        }
        Ok(Some(CaMaterial {
            signing_cert: cert.clone(),
            intermediates: Vec::new(),
            roots: vec![cert.clone()],
            key,
            key_ref: keys.key_ref(CA_KEY_SLOT),
        }))
    }
}

impl UpstreamAuthority for SelfSigned {
    fn kind(&self) -> &'static str {
        "self-signed"
    }

    fn obtain(
        &self,
        td: &TrustDomain,
        keys: &dyn KeyManager,
        now: SystemTime,
    ) -> Result<CaMaterial, UpstreamError> {
        if let Some(m) = self.existing(keys, now)? {
            return Ok(m);
        }
        let key = keys.generate_signer(CA_KEY_SLOT)?;
        let template = CaTemplate {
            trust_domain: td.clone(),
            common_name: "meshid root CA".into(),
            not_before: now,
            not_after: now + self.ttl,
            path_len: None,
        };
        let cert = key.sign_with(|k| self_signed_ca(&template, &k))?;
        write_atomic(
            &self.cert_path,
            to_pem(std::slice::from_ref(&cert)).as_bytes(),
            0o644,
        )
        .map_err(|source| UpstreamError::Io {
            path: self.cert_path.display().to_string(),
            source,
        })?;
        tracing::info!(path = %self.cert_path.display(), "created a new self-signed root");
        Ok(CaMaterial {
            signing_cert: cert.clone(),
            intermediates: Vec::new(),
            roots: vec![cert],
            key,
            key_ref: keys.key_ref(CA_KEY_SLOT),
        })
    }
}
