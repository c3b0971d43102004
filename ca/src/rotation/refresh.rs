//! How a CA replica sees what the others wrote: every `[ha]
//! refresh_interval` it re-reads the key journal and its trust domain's
//! stored bundle, and hands a change to the engine through a
//! [`watch`] channel.
//!
//! A change is a bundle with a higher sequence than the one last handed
//! over (a bundle with a lower or equal one is never served instead: the
//! newest wins), or a journal that differs from the last one read. A store
//! that cannot be read is logged and read again at the next tick; the
//! replica keeps serving what it has. So what another replica writes is
//! served here within one `refresh_interval` (plus one store read).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use meshid_identity::TrustDomain;
use tokio::sync::{Notify, watch};

use crate::store::{KeySlot, Store, StoreError, StoredBundle};

/// What the shared store held at one read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedState {
    /// This trust domain's stored bundle, the newest seen (`None` until
    /// one is stored).
    pub bundle: Option<StoredBundle>,
    /// Every replica's key slots, by slot ID.
    pub slots: Vec<KeySlot>,
}

/// Re-reads the shared state of one trust domain. Cheap to clone; clones
/// share one [`Refresher::refresh_now`] signal.
#[derive(Clone)]
pub struct Refresher {
    store: Arc<dyn Store>,
    trust_domain: TrustDomain,
    interval: Duration,
    now: Arc<Notify>,
}

// === impl SharedState ===

impl SharedState {
    /// The stored bundle's sequence (0 without one).
    pub fn sequence(&self) -> i64 {
        self.bundle.as_ref().map_or(0, |b| b.sequence)
    }

    /// Takes in `read`, a newer read of the store: the journal as read, the
    /// bundle only if its sequence is higher. Returns whether anything
    /// changed.
    fn merge(&mut self, read: SharedState) -> bool {
        let mut changed = false;
        if read.slots != self.slots {
            self.slots = read.slots;
            changed = true;
        }
        match (read.bundle, &self.bundle) {
            (Some(new), Some(old)) if new.sequence > old.sequence => {
                self.bundle = Some(new);
                changed = true;
            }
            (Some(new), None) => {
                self.bundle = Some(new);
                changed = true;
            }
            _ => {}
        }
        changed
    }
}

// === impl Refresher ===

impl Refresher {
    /// Reads `trust_domain`'s bundle and the journal from `store` every
    /// `interval` (`[ha] refresh_interval`).
    pub fn new(store: Arc<dyn Store>, trust_domain: TrustDomain, interval: Duration) -> Self {
        Self {
            store,
            trust_domain,
            interval,
            now: Arc::new(Notify::new()),
        }
    }

    /// One read of the store: the journal and the stored bundle.
    pub async fn read(&self) -> Result<SharedState, StoreError> {
        let slots = self.store.list_key_slots().await?;
        let bundle = self.store.get_bundle(&self.trust_domain).await?;
        Ok(SharedState { bundle, slots })
    }

    /// Asks the running [`Refresher::run`] to read the store at once
    /// instead of at its next tick (after this replica wrote, so its own
    /// change is served without waiting).
    pub fn refresh_now(&self) {
        self.now.notify_one();
    }

    /// Reads the store every interval (and on [`Refresher::refresh_now`])
    /// and sends each change on `tx` (which starts with what the caller
    /// read at start-up), until `shutdown` turns true or every receiver is
    /// gone. Store errors are logged and retried at the next tick.
    pub async fn run(self, tx: watch::Sender<SharedState>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: the caller has just read.
        tick.tick().await;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.now.notified() => {}
                changed = shutdown.changed() => if changed.is_err() {
                    return;
                },
            }
            if *shutdown.borrow() || tx.is_closed() {
                return;
            }
            match self.read().await {
                Ok(read) => {
                    if failing {
                        tracing::info!("the store can be read again; CA key journal refreshed");
                        failing = false;
                    }
                    tx.send_if_modified(|state| state.merge(read));
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(
                        error = %e,
                        every = %humantime::format_duration(self.interval),
                        "cannot read the CA key journal and trust bundle from the store; \
                         serving what was read last and retrying"
                    );
                }
                Err(e) => tracing::debug!(error = %e, "the store still cannot be read"),
            }
        }
    }
}

impl fmt::Debug for Refresher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refresher")
            .field("trust_domain", &self.trust_domain)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
