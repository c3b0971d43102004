//! One rotation step at a time across all CA replicas: each step runs under
//! the store lease [`ROTATION_LEASE`], and every journal write it makes is
//! fenced by the lease's token (`Store::put_key_slot`,
//! `Store::delete_key_slot`), so a replica that lost the lease without
//! noticing cannot write.
//!
//! [`RotationLease::run`] takes the lease (or reports who holds it), runs
//! the step, renews the lease every half `lease_ttl` while the step runs,
//! and releases it after. A renewal that finds the lease taken by another
//! replica, or that cannot reach the store before the lease lapses, aborts
//! the step (its future is dropped) with [`LeaseError::Lost`]. Steps of one
//! replica also wait for each other: the store would hand the same holder
//! its own lease twice.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_runtime::clock::SharedClock;

use super::ReplicaId;
use crate::store::{Lease, Store, StoreError};

/// The name of the lease rotation steps run under.
pub const ROTATION_LEASE: &str = "rotation";

/// Why a step did not run to its end under the lease.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// Another replica holds the lease; the step did not run.
    #[error(
        "busy, held by {}: the `{name}` lease is taken by another CA replica for a rotation \
         step; try again when it is done (a lease lapses within [ha] lease_ttl)",
        held_by(holder.as_deref(), *until)
    )]
    Busy {
        /// The lease.
        name: String,
        /// Who holds it (`None` if it could not be read).
        holder: Option<String>,
        /// Until when, unless renewed.
        until: Option<SystemTime>,
    },
    /// The lease was lost while the step ran: the step was aborted, and
    /// any journal write it had not made yet was not made.
    #[error(
        "the `{name}` lease of {holder} was lost during the {step} step ({reason}); the step \
         was aborted and is retried by whichever replica holds the lease next"
    )]
    Lost {
        /// The lease.
        name: String,
        /// This replica.
        holder: String,
        /// The aborted step.
        step: String,
        /// What happened.
        reason: String,
    },
    /// The store could not be asked for the lease.
    #[error("cannot take the `{name}` lease: {source}")]
    Store {
        /// The lease.
        name: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

/// Runs rotation steps under [`ROTATION_LEASE`] as one replica. Cheap to
/// clone; clones share the one-step-at-a-time lock.
#[derive(Clone)]
pub struct RotationLease {
    store: Arc<dyn Store>,
    holder: ReplicaId,
    ttl: Duration,
    clock: SharedClock,
    /// One step of this replica at a time.
    local: Arc<tokio::sync::Mutex<()>>,
}

// === impl RotationLease ===

impl RotationLease {
    /// Steps of replica `holder`, holding the lease for `ttl` at a time
    /// (`[ha] lease_ttl`); `clock` is the one the engine decides with (the
    /// store stamps lease times from its own clock).
    pub fn new(
        store: Arc<dyn Store>,
        holder: ReplicaId,
        ttl: Duration,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            holder,
            ttl,
            clock,
            local: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The replica whose steps these are.
    pub fn holder(&self) -> &ReplicaId {
        &self.holder
    }

    /// Runs `step` (named `name` in errors and logs) holding the lease: it
    /// gets the [`Lease`] to fence its writes with. Another replica holding
    /// it → [`LeaseError::Busy`] and `step` does not run. The step's own
    /// error comes back as it is; a lost lease aborts it with
    /// [`LeaseError::Lost`] (converted into the step's error type).
    pub async fn run<T, E, F, Fut>(&self, name: &str, step: F) -> Result<T, E>
    where
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<LeaseError>,
    {
        let _one_step = self.local.lock().await;
        let taken = self
            .store
            .acquire_lease(ROTATION_LEASE, self.holder.as_str(), self.ttl)
            .await
            .map_err(|source| LeaseError::Store {
                name: ROTATION_LEASE.to_owned(),
                source,
            })?;
        let Some(lease) = taken else {
            return Err(self.busy().await.into());
        };
        tracing::debug!(step = name, token = lease.token, "rotation lease taken");
        let outcome = tokio::select! {
            done = step(lease.clone()) => Ok(done),
            lost = self.keep(&lease) => Err(lost),
        };
        match outcome {
            Ok(done) => {
                if let Err(e) = self.store.release_lease(&lease).await {
                    tracing::warn!(
                        step = name,
                        error = %e,
                        "cannot release the rotation lease; it lapses within [ha] lease_ttl"
                    );
                }
                done
            }
            Err(reason) => {
                let e = LeaseError::Lost {
                    name: ROTATION_LEASE.to_owned(),
                    holder: self.holder.to_string(),
                    step: name.to_owned(),
                    reason,
                };
                tracing::warn!("{e}");
                Err(e.into())
            }
        }
    }

    /// [`LeaseError::Busy`], naming the holder as the store recorded it
    /// (a failed read leaves the holder out: it is only for the message).
    async fn busy(&self) -> LeaseError {
        let held = match self.store.get_lease(ROTATION_LEASE).await {
            Ok(held) => held,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read who holds the rotation lease");
                None
            }
        };
        LeaseError::Busy {
            name: ROTATION_LEASE.to_owned(),
            holder: held.as_ref().map(|l| l.holder.clone()),
            until: held.map(|l| l.expires_at),
        }
    }

    /// Renews `lease` every half ttl; returns (why) once it is lost: taken
    /// by another replica, re-taken under a new token, or lapsed because
    /// the store could not be reached in time. Never returns while the
    /// lease is held.
    async fn keep(&self, lease: &Lease) -> String {
        let mut expires_at = lease.expires_at;
        loop {
            tokio::time::sleep(self.ttl / 2).await;
            match self
                .store
                .acquire_lease(ROTATION_LEASE, self.holder.as_str(), self.ttl)
                .await
            {
                Ok(Some(renewed)) if renewed.token == lease.token => {
                    expires_at = renewed.expires_at;
                }
                Ok(Some(retaken)) => {
                    return format!(
                        "it lapsed and was taken again under token {} (was {})",
                        retaken.token, lease.token
                    );
                }
                Ok(None) => return "another replica took it after it lapsed".to_owned(),
                Err(e) => {
                    let now = self.clock.now();
                    if now >= expires_at {
                        return format!(
                            "it lapsed at {} while renewal failed: {e}",
                            show(expires_at)
                        );
                    }
                    tracing::warn!(error = %e, "cannot renew the rotation lease; retrying");
                }
            }
        }
    }
}

impl fmt::Debug for RotationLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotationLease")
            .field("holder", &self.holder)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn show(t: SystemTime) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(t)
}

/// `ca-b until 2026-12-01T17:30:00Z`, or as much of it as is known.
fn held_by(holder: Option<&str>, until: Option<SystemTime>) -> String {
    let holder = holder.unwrap_or("another CA replica");
    match until {
        Some(t) => format!("{holder} until {}", show(t)),
        None => holder.to_owned(),
    }
}

/// Its fixtures (a store on a manual clock, a slot) serve the refresh
/// tests too.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) mod tests;
