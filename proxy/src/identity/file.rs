//! Identity from PEM files, polled for changes (cert-manager, Vault agent,
//! or `meshid agent` writing files).

use super::{Identity, IdentityError, IdentitySource, IdentityWatch};
use crate::metrics::ReloadMetrics;
use meshid_identity::{BundleSet, PrivateKey, TrustBundle, x509};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// Largest PEM file read, in bytes.
const MAX_FILE: u64 = 512 * 1024;

/// Reads SVID, key and bundle PEM files and re-reads them when they change.
///
/// A half-written set of files (empty or truncated PEM, key not matching
/// the cert yet) is logged, counted as a rejected reload and skipped; the
/// previous identity stays in force and the files are retried on the next
/// poll, so writers need not be atomic.
#[derive(Clone, Debug)]
pub struct FileSource {
    cert: PathBuf,
    key: PathBuf,
    bundle: PathBuf,
    interval: Duration,
    metrics: ReloadMetrics,
}

// === impl FileSource ===

impl FileSource {
    /// Watches the three files every `interval`.
    pub fn new(cert: PathBuf, key: PathBuf, bundle: PathBuf, interval: Duration) -> Self {
        Self {
            cert,
            key,
            bundle,
            interval: interval.max(Duration::from_millis(10)),
            metrics: ReloadMetrics::new(),
        }
    }

    /// Reload outcomes of the files (shared with the running source).
    pub fn reload_metrics(&self) -> &ReloadMetrics {
        &self.metrics
    }

    /// Reads the files once and checks them at `now`.
    pub fn load(&self, now: SystemTime) -> Result<Identity, IdentityError> {
        let (c, k, b) = self.read_all()?;
        build(&c, &k, &b, now)
    }

    fn read_all(&self) -> Result<(String, String, String), IdentityError> {
        Ok((read(&self.cert)?, read(&self.key)?, read(&self.bundle)?))
    }

    /// Polls the files; `good` is the digest of the content already
    /// published (zero if none).
    async fn run(self, tx: watch::Sender<Option<Arc<Identity>>>, mut good: [u8; 32]) {
        // Digests of the last content published and of the last content
        // rejected (retried each poll, as validity depends on the time,
        // but logged and counted once).
        let mut bad = [0u8; 32];
        let mut read_error = String::new();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !tx.is_closed() {
            ticker.tick().await;
            let me = self.clone();
            let read = tokio::task::spawn_blocking(move || me.read_all()).await;
            let (c, k, b) = match read {
                Ok(Ok(files)) => files,
                Ok(Err(e)) => {
                    let msg = e.to_string();
                    if msg != read_error {
                        self.reject(&msg);
                        read_error = msg;
                        bad = [0; 32];
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!("identity file reader failed: {e}");
                    continue;
                }
            };
            read_error.clear();
            let digest = digest(&c, &k, &b);
            if digest == good {
                bad = [0; 32];
                continue;
            }
            match build(&c, &k, &b, SystemTime::now()) {
                Ok(id) => {
                    (good, bad) = (digest, [0; 32]);
                    tracing::info!(id = %id.spiffe_id.as_str(), serial = %id.serial, "identity loaded from files");
                    tx.send_replace(Some(Arc::new(id)));
                    self.metrics.accepted();
                }
                Err(e) if digest != bad => {
                    bad = digest;
                    self.reject(&e.to_string());
                }
                Err(_) => {}
            }
        }
    }

    /// Logs and counts a failed reload; the previous identity stays published.
    fn reject(&self, msg: &str) {
        tracing::warn!("identity files not usable, keeping the previous identity (if any): {msg}");
        self.metrics.rejected();
    }
}

impl IdentitySource for FileSource {
    fn start(self: Box<Self>) -> IdentityWatch {
        let (tx, rx) = watch::channel(None);
        // Published at once; the first poll then sees the same content and
        // keeps it (no second identical identity, which would rebuild the
        // TLS configs and drop their session caches for nothing).
        let mut good = [0u8; 32];
        if let Ok((c, k, b)) = self.read_all()
            && let Ok(id) = build(&c, &k, &b, SystemTime::now())
        {
            good = digest(&c, &k, &b);
            tx.send_replace(Some(Arc::new(id)));
            self.metrics.accepted();
        }
        tokio::spawn(self.run(tx, good));
        rx
    }
}

/// What identifies one content of the three files.
fn digest(cert: &str, key: &str, bundle: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [cert, key, bundle] {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

fn read(path: &Path) -> Result<String, IdentityError> {
    let err = |source| IdentityError::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(err)?.len();
    if len > MAX_FILE {
        return Err(err(std::io::Error::other("file is larger than 512 KiB")));
    }
    std::fs::read_to_string(path).map_err(err)
}

fn build(cert: &str, key: &str, bundle: &str, now: SystemTime) -> Result<Identity, IdentityError> {
    let chain = x509::pem_certs(cert).map_err(|e| IdentityError::Svid(e.to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| IdentityError::Svid("no CERTIFICATE block in the cert file".into()))?;
    let td = x509::spiffe_id_of(leaf)
        .map_err(|e| IdentityError::Svid(e.to_string()))?
        .trust_domain();
    let key = PrivateKey::from_pem(key).map_err(|e| IdentityError::Key(e.to_string()))?;
    let bundle =
        TrustBundle::from_pem(td, bundle).map_err(|e| IdentityError::Bundle(e.to_string()))?;
    let bundles: BundleSet = std::iter::once(bundle).collect();
    Identity::new(chain, key, bundles, now)
}
