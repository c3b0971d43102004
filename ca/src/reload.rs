//! Hot reload of the intermediate from disk: [`Reloader`] polls the
//! upstream files ([`Disk::fingerprint`]), and when they changed and held
//! still for one more poll (so a chain written before its key is not read
//! half-done), reads and validates them exactly as at start-up
//! ([`CurrentAuthority::candidate`]: as [`crate::authority::Authority::new`],
//! then [`crate::authority::Authority::check_issuance`]). Only a valid
//! intermediate replaces the current one;
//! an invalid one is logged with the start-up message, counted, and tried
//! again on every poll (a not-yet-valid intermediate may become valid)
//! while the CA keeps signing with the previous one. A valid one goes to
//! the rotation engine ([`Engine::offer`]): under the same roots it signs
//! at once; with a new root it is published first and signs after the
//! propagation delay.

use std::sync::Arc;
use std::time::Duration;

use meshid_runtime::clock::SharedClock;

use crate::authority::CurrentAuthority;
use crate::keymanager::KeyManager;
use crate::metrics::CaMetrics;
use crate::rotation::{Engine, Offered};
use crate::upstream::{Disk, Fingerprint};

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Poll {
    /// The files hold what the current authority was built from.
    Unchanged,
    /// The files changed since the last poll; they are read once they
    /// hold still for one more.
    Settling,
    /// A valid replacement was taken: it signs now, or (a new root)
    /// after the propagation delay.
    Applied,
    /// The files changed but hold the same CA; nothing was swapped.
    Same,
    /// The files hold no usable intermediate; the reason, as logged.
    Rejected(String),
}

/// Watches the disk upstream and swaps in valid replacements.
pub struct Reloader {
    current: CurrentAuthority,
    engine: Engine,
    upstream: Disk,
    keys: Arc<dyn KeyManager>,
    metrics: CaMetrics,
    clock: SharedClock,
    /// The files the current authority was built from.
    applied: Fingerprint,
    /// What the last poll saw, when it differed from `applied`.
    seen: Option<Fingerprint>,
    /// The last rejection logged (files and reason), so a candidate that
    /// stays invalid is logged and counted once, not on every poll.
    rejected: Option<(Fingerprint, String)>,
}

// === impl Reloader ===

impl Reloader {
    /// A reloader of `engine`'s authority from `upstream`; `applied` is the
    /// fingerprint taken before the current authority was read.
    pub fn new(
        engine: Engine,
        upstream: Disk,
        keys: Arc<dyn KeyManager>,
        metrics: CaMetrics,
        clock: SharedClock,
        applied: Fingerprint,
    ) -> Self {
        Self {
            current: engine.current().clone(),
            engine,
            upstream,
            keys,
            metrics,
            clock,
            applied,
            seen: None,
            rejected: None,
        }
    }

    /// Checks the files once and acts on what it finds.
    pub async fn poll(&mut self) -> Poll {
        let now_seen = self.upstream.fingerprint();
        if now_seen == self.applied {
            self.seen = None;
            self.clear_failing();
            return Poll::Unchanged;
        }
        if self.seen != Some(now_seen) {
            self.seen = Some(now_seen);
            return Poll::Settling;
        }
        let now = self.clock.now();
        let candidate = self
            .current
            .candidate(&self.upstream, self.keys.as_ref(), now);
        match candidate {
            Err(e) => self.reject(now_seen, e.to_string()),
            Ok(new) => {
                let (kind, not_after) = (new.kind(), new.not_after());
                let offered = match self.engine.offer(new).await {
                    Ok(o) => o,
                    Err(e) => {
                        // Not a verdict on the files: try again on the next poll.
                        tracing::warn!(error = %e, "cannot take the replaced intermediate; retrying");
                        return Poll::Settling;
                    }
                };
                self.applied = now_seen;
                self.clear_failing();
                if offered == Offered::Same {
                    return Poll::Same;
                }
                self.metrics.upstream_reload("applied");
                let when = match offered {
                    Offered::Prepared => {
                        "its root is new: published now, it signs new SVIDs after the \
                         propagation delay"
                    }
                    _ => "new SVIDs are signed by it",
                };
                tracing::info!(
                    authority = kind,
                    not_after = %humantime::format_rfc3339_seconds(not_after),
                    "replaced intermediate taken: {when}"
                );
                Poll::Applied
            }
        }
    }

    /// Polls every `interval` until `stop` completes.
    pub async fn run(mut self, interval: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(interval) => {}
            }
            self.poll().await;
        }
    }

    fn reject(&mut self, seen: Fingerprint, reason: String) -> Poll {
        let already = self
            .rejected
            .as_ref()
            .is_some_and(|(f, r)| *f == seen && *r == reason);
        if !already {
            tracing::error!(
                error = %reason,
                "the replaced upstream intermediate is refused; still signing with the previous one"
            );
            self.metrics.upstream_reload("rejected");
            self.rejected = Some((seen, reason.clone()));
        }
        self.metrics.set_upstream_reload_failing(true);
        Poll::Rejected(reason)
    }

    fn clear_failing(&mut self) {
        self.rejected = None;
        self.metrics.set_upstream_reload_failing(false);
    }
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("upstream", &self.upstream)
            .field("applied", &self.applied)
            .finish()
    }
}
