//! The proxy's own identity: its X.509-SVID, private key and trust bundles,
//! published on a `tokio::sync::watch` channel by an [`IdentitySource`].
//!
//! ```text
//!  FileSource ─┐                         ┌─▶ tls::TlsStore (new handshakes)
//!              ├─▶ watch<Option<Arc<Identity>>> ─┤
//!  WorkloadApi ┘                         └─▶ metrics (expiry gauge), /readyz
//! ```

mod file;
mod workload_api;

pub use file::FileSource;
pub use workload_api::WorkloadApiSource;

use meshid_identity::{BundleSet, PrivateKey, SpiffeId, x509};
use rustls::pki_types::CertificateDer;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::watch;

/// Receives every new identity; `None` until the first one is loaded.
pub type IdentityWatch = watch::Receiver<Option<Arc<Identity>>>;

/// A complete, checked identity: SVID chain, matching key, trust bundles.
#[derive(Clone)]
pub struct Identity {
    /// The SPIFFE ID in the leaf.
    pub spiffe_id: SpiffeId,
    /// Leaf first, then intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKey,
    /// Own and federated trust bundles used to verify peers.
    pub bundles: Arc<BundleSet>,
    /// When the leaf expires.
    pub not_after: SystemTime,
    /// The leaf's serial number, hex (for logs and tests).
    pub serial: String,
}

/// Why an identity could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The SVID chain is empty or not an X.509-SVID.
    #[error("SVID is not usable: {0}; provide a PEM chain whose leaf has one spiffe:// URI SAN")]
    Svid(String),
    /// The private key is not usable or does not match the leaf.
    #[error("private key is not usable: {0}")]
    Key(String),
    /// The trust bundle is not usable.
    #[error("trust bundle is not usable: {0}")]
    Bundle(String),
    /// The Workload API failed.
    #[error("workload API: {0}")]
    WorkloadApi(String),
}

/// Where an identity comes from. A source runs until the sender is closed,
/// publishing every valid new identity and logging (not publishing) bad ones.
pub trait IdentitySource: Send + 'static {
    /// Starts the source on the current tokio runtime.
    fn start(self: Box<Self>) -> IdentityWatch;
}

/// The source `config` names, for the proxy and anything else that serves
/// with an SVID (the injection webhook): a file source's reload metrics go
/// into `registry` as `identity_files_*`.
pub fn from_config(
    config: &crate::config::IdentityConfig,
    registry: &mut prometheus_client::registry::Registry,
) -> Box<dyn IdentitySource> {
    use crate::config::IdentityConfig;
    match config {
        IdentityConfig::WorkloadApi { socket } => Box::new(WorkloadApiSource::new(socket.clone())),
        IdentityConfig::Files {
            cert, key, bundle, ..
        } => {
            let files = FileSource::new(
                cert.clone(),
                key.clone(),
                bundle.clone(),
                config.poll_interval().unwrap_or_default(),
            );
            files.reload_metrics().register(
                registry,
                "identity_files",
                "identity files (SVID, key, bundle)",
            );
            Box::new(files)
        }
    }
}

// === impl Identity ===

impl Identity {
    /// Checks that `chain`'s leaf is an SVID that verifies against `bundles`
    /// at `now`, and that `key` is the leaf's key.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKey,
        bundles: BundleSet,
        now: SystemTime,
    ) -> Result<Self, IdentityError> {
        let leaf = chain
            .first()
            .ok_or_else(|| IdentityError::Svid("the chain is empty".into()))?;
        let verified = meshid_identity::verify_x509_svid(&chain, &bundles, now)
            .map_err(|e| IdentityError::Svid(e.to_string()))?;
        let leaf_spki =
            x509::public_key_of(leaf).map_err(|e| IdentityError::Svid(e.to_string()))?;
        if leaf_spki != key.public_key_der() {
            return Err(IdentityError::Key(
                "the key does not match the SVID's public key; check that cert and key files belong together".into(),
            ));
        }
        let not_after = x509::not_after(leaf).map_err(|e| IdentityError::Svid(e.to_string()))?;
        let serial = x509::serial_of(leaf).map_err(|e| IdentityError::Svid(e.to_string()))?;
        Ok(Self {
            spiffe_id: verified.spiffe_id,
            chain,
            key,
            bundles: Arc::new(bundles),
            not_after,
            serial,
        })
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("spiffe_id", &self.spiffe_id.as_str())
            .field("serial", &self.serial)
            .field("chain_len", &self.chain.len())
            .field("key", &"...")
            .finish()
    }
}
