//! Where the CA's own certificate comes from: [`UpstreamAuthority`].
//!
//! - [`SelfSigned`]: a self-signed root generated on first start and kept in
//!   the data directory (key through the [`KeyManager`], certificate as PEM).
//! - [`Disk`]: an intermediate issued by an enterprise root, read from
//!   files (chain, key, roots) or an Istio / Kubernetes directory and
//!   validated in full at start-up; the bundle is that root.
//! - [`Meshid`]: an intermediate signed by another meshid CA of the same
//!   trust domain, which this CA attests to like an agent; renewed at half
//!   its life ([`meshid::renew`]).

mod disk;
pub mod meshid;
mod self_signed;

use std::fmt;
use std::time::SystemTime;

use meshid_identity::TrustDomain;
use rustls_pki_types::CertificateDer;

use crate::keymanager::{CaKey, CaSignError, KeyManager, KeyManagerError};

pub use disk::{Disk, Fingerprint, Import, ImportError, Imported};
pub use meshid::{Meshid, MeshidError};
pub use self_signed::{CA_KEY_SLOT, SelfSigned};

/// The CA's signing material.
#[derive(Clone)]
pub struct CaMaterial {
    /// The certificate the CA signs with.
    pub signing_cert: CertificateDer<'static>,
    /// Certificates between the signing certificate and the root (excluded),
    /// in issuing order; empty for a self-signed root or a direct intermediate.
    pub intermediates: Vec<CertificateDer<'static>>,
    /// The trust anchors published in the bundle.
    pub roots: Vec<CertificateDer<'static>>,
    /// The signing key (matches `signing_cert`), in memory or on a token.
    pub key: CaKey,
    /// Where the key lives, for the store's CA key journal.
    pub key_ref: String,
}

impl CaMaterial {
    /// True if the signing certificate is itself a root of the bundle.
    pub fn signing_cert_is_root(&self) -> bool {
        self.roots.iter().any(|r| r == &self.signing_cert)
    }

    /// What an SVID chain carries after the leaf: the signing certificate
    /// (unless it is the root) and the intermediates.
    pub fn chain_after_leaf(&self) -> Vec<CertificateDer<'static>> {
        let mut out = Vec::with_capacity(1 + self.intermediates.len());
        if !self.signing_cert_is_root() {
            out.push(self.signing_cert.clone());
            out.extend(self.intermediates.iter().cloned());
        }
        out
    }

    /// The full chain: signing certificate first, up to and including the root.
    pub fn full_chain(&self) -> Vec<CertificateDer<'static>> {
        let mut out = vec![self.signing_cert.clone()];
        if !self.signing_cert_is_root() {
            out.extend(self.intermediates.iter().cloned());
            out.extend(self.roots.first().cloned());
        }
        out
    }
}

impl fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaMaterial")
            .field("intermediates", &self.intermediates.len())
            .field("roots", &self.roots.len())
            .field("key", &"...")
            .field("key_ref", &self.key_ref)
            .finish()
    }
}

/// An upstream authority failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The key manager failed.
    #[error(transparent)]
    Keys(#[from] KeyManagerError),
    /// A file could not be read or written.
    #[error("{path}: {source}; check the path and its permissions")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key file has unusable content.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The upstream meshid CA did not sign an intermediate.
    #[error(transparent)]
    Meshid(#[from] MeshidError),
    /// Building the CA certificate failed.
    #[error("creating the CA certificate failed: {0}")]
    Sign(#[from] meshid_identity::X509Error),
}

impl From<CaSignError> for UpstreamError {
    fn from(e: CaSignError) -> Self {
        match e {
            CaSignError::Unavailable { source, .. } => Self::Keys(KeyManagerError::Pkcs11(source)),
            CaSignError::Certificate(e) => Self::Sign(e),
        }
    }
}

/// Supplies the CA's signing certificate, key and trust anchors.
pub trait UpstreamAuthority: Send + Sync + fmt::Debug {
    /// `self-signed`, `disk`, … (shown by `meshid ca show`).
    fn kind(&self) -> &'static str;
    /// Loads (or creates) the signing material for `td`, valid at `now`.
    fn obtain(
        &self,
        td: &TrustDomain,
        keys: &dyn KeyManager,
        now: SystemTime,
    ) -> Result<CaMaterial, UpstreamError>;
}

/// The SubjectPublicKeyInfo (DER) of a certificate, its notAfter, and
/// whether it is a CA.
pub(crate) fn cert_facts(der: &[u8]) -> Option<(Vec<u8>, SystemTime, bool)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let spki = cert.tbs_certificate.subject_pki.raw.to_vec();
    let secs = u64::try_from(cert.validity().not_after.timestamp()).ok()?;
    let not_after = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    Some((spki, not_after, cert.is_ca()))
}
