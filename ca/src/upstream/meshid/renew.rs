//! Renewal of the intermediate an upstream meshid CA signed:
//! [`Renewer`] mints a new one at half the current one's life, builds
//! the authority from it exactly as at start-up
//! ([`CurrentAuthority::candidate`]) and hands it to the rotation engine
//! ([`Engine::offer`]: under the same root it signs at once; a new root is
//! published first), with no restart. While the upstream is
//! down it retries with backoff and the CA keeps signing with the current
//! intermediate (SVIDs never outlive it).

use std::sync::Arc;
use std::time::Duration;

use meshid_runtime::backoff::Backoff;
use meshid_runtime::clock::SharedClock;

use super::Meshid;
use crate::authority::CurrentAuthority;
use crate::keymanager::KeyManager;
use crate::metrics::CaMetrics;
use crate::rotation::Engine;

/// First retry delay after a failed renewal.
const RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Renews the intermediate of a [`Meshid`] upstream.
pub struct Renewer {
    current: CurrentAuthority,
    engine: Engine,
    upstream: Arc<Meshid>,
    keys: Arc<dyn KeyManager>,
    metrics: CaMetrics,
    clock: SharedClock,
}

// === impl Renewer ===

impl Renewer {
    /// A renewer of `engine`'s authority, which was built from `upstream`.
    pub fn new(
        engine: Engine,
        upstream: Arc<Meshid>,
        keys: Arc<dyn KeyManager>,
        metrics: CaMetrics,
        clock: SharedClock,
    ) -> Self {
        Self {
            current: engine.current().clone(),
            engine,
            upstream,
            keys,
            metrics,
            clock,
        }
    }

    /// How long until the current intermediate is due (half its life),
    /// but at least [`RETRY_BASE`], so an intermediate that comes back
    /// short (clamped to the upstream's own expiry) never spins the loop.
    fn until_due(&self) -> Duration {
        let now = self.clock.now();
        self.upstream
            .renew_at()
            .and_then(|at| at.duration_since(now).ok())
            .unwrap_or_default()
            .max(RETRY_BASE)
    }

    /// Mints a new intermediate and swaps it in.
    pub async fn renew(&self) -> Result<(), String> {
        let now = self.clock.now();
        self.upstream
            .mint(self.keys.as_ref(), now)
            .await
            .map_err(|e| e.to_string())?;
        let upstream_jwt = self.upstream.jwt_authorities();
        let new = self
            .current
            .candidate(self.upstream.as_ref(), self.keys.as_ref(), now)
            .map_err(|e| e.to_string())?
            .with_jwt_authorities(&upstream_jwt);
        let not_after = new.not_after();
        self.engine.set_upstream_jwt(upstream_jwt);
        self.engine
            .offer(new)
            .await
            .map_err(|e| format!("cannot take the renewed intermediate: {e}"))?;
        tracing::info!(
            not_after = %humantime::format_rfc3339_seconds(not_after),
            "renewed intermediate from the upstream meshid CA taken: new SVIDs are signed by it"
        );
        Ok(())
    }

    /// Renews at half of each intermediate's life until `stop` completes;
    /// failures are logged, counted and retried with backoff.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_MAX);
        let mut retry: Option<Duration> = None;
        loop {
            let wait = retry.unwrap_or_else(|| self.until_due());
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(wait) => {}
            }
            match self.renew().await {
                Ok(()) => {
                    self.metrics.upstream_renewal("applied");
                    backoff.reset();
                    retry = None;
                }
                Err(e) => {
                    self.metrics.upstream_renewal("failed");
                    retry = Some(backoff.next_delay());
                    tracing::warn!(
                        error = %e,
                        attempt = backoff.attempts(),
                        "cannot renew the intermediate from the upstream meshid CA; still \
                         signing with the current one, retrying"
                    );
                }
            }
        }
    }
}

impl std::fmt::Debug for Renewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renewer")
            .field("upstream", &self.upstream)
            .finish()
    }
}
