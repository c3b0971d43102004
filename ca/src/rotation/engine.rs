//! The rotation engine: [`Engine`] keeps this replica's slots of the key
//! journal moving (prepare → active → old → forgotten) on the
//! [`Schedule`], on an operator's command (`manual.rs`) or when a new
//! intermediate arrives ([`Engine::offer`]), and keeps the
//! [`CurrentAuthority`] (what signs, what bundle is served) in step with
//! the journal every replica shares.
//!
//! Every write to the journal is made under the `rotation` lease
//! ([`RotationLease`]), and followed by publishing the bundle derived from
//! the journal ([`CurrentAuthority::publish`]). What other replicas write
//! is seen through the [`Refresher`] within `[ha] refresh_interval`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use meshid_identity::{JwtAuthority, PrivateKey};
use meshid_runtime::clock::SharedClock;

use super::adopt::{adopt_jwt, adopt_x509};
use super::material::{self, X509Source};
use super::{Journal, ReplicaId, RotationError, RotationLease, Schedule, Step};
use crate::authority::{AuthorityConfig, CurrentAuthority};
use crate::keymanager::KeyManager;
use crate::metrics::CaMetrics;
use crate::store::{KeyKind, KeySlot, Lease, SlotState, Store};
use crate::upstream::CaMaterial;

/// What the engine is built from.
#[derive(Debug)]
pub struct EngineParts {
    /// This replica.
    pub replica: ReplicaId,
    /// The shared store.
    pub store: Arc<dyn Store>,
    /// This replica's key manager.
    pub keys: Arc<dyn KeyManager>,
    /// The clock every step is decided and stamped with.
    pub clock: SharedClock,
    /// When steps are due.
    pub schedule: Schedule,
    /// `[ha] lease_ttl`.
    pub lease_ttl: Duration,
    /// The issuance limits of every authority made.
    pub limits: AuthorityConfig,
    /// Where X.509 keys come from.
    pub source: X509Source,
    /// The upstream's current intermediate (an [`X509Source::Upstream`]).
    pub upstream: Option<(&'static str, CaMaterial)>,
    /// An upstream meshid CA's JWT keys, published beside this CA's own.
    pub upstream_jwt: Vec<JwtAuthority>,
    /// Life of a new JWT key.
    pub jwt_key_ttl: Duration,
    /// The CA's metrics.
    pub metrics: CaMetrics,
}

/// The rotation engine of one replica. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) replica: ReplicaId,
    pub(super) store: Arc<dyn Store>,
    pub(super) keys: Arc<dyn KeyManager>,
    pub(super) clock: SharedClock,
    pub(super) schedule: Schedule,
    pub(super) lease: RotationLease,
    pub(super) limits: AuthorityConfig,
    pub(super) source: X509Source,
    pub(super) kind: &'static str,
    pub(super) jwt_key_ttl: Duration,
    pub(super) metrics: CaMetrics,
    pub(super) current: CurrentAuthority,
    pub(super) held: Mutex<Held>,
    /// Held while this replica's authority follows the journal, so an
    /// older read never swaps back a newer activation.
    pub(super) swap: tokio::sync::Mutex<()>,
}

/// The private halves of this replica's prepared and active slots, by
/// slot ID.
#[derive(Default)]
pub(super) struct Held {
    pub(super) x509: HashMap<String, CaMaterial>,
    pub(super) jwt: HashMap<String, PrivateKey>,
    pub(super) upstream_jwt: Vec<JwtAuthority>,
    /// When an expiry warning was last logged, by key ID.
    pub(super) warned: HashMap<String, SystemTime>,
}

// === impl Engine ===

impl Engine {
    /// Adopts this replica's slots from the journal (or an existing data
    /// directory as generation 1, or makes generation 1), builds the
    /// authority from its active slots, records what changed under the
    /// lease and publishes the bundle.
    pub async fn start(parts: EngineParts) -> Result<Self, RotationError> {
        let now = parts.clock.now();
        let replica = parts.replica.as_str().to_owned();
        let journal = Journal::new(parts.store.list_key_slots().await?);
        let mut held = Held {
            upstream_jwt: parts.upstream_jwt.clone(),
            ..Held::default()
        };
        let mut writes = Vec::new();

        let (jwt_slot, jwt_key) = adopt_jwt(&parts, &journal, &mut writes, now)?;
        held.jwt.insert(jwt_slot.clone(), jwt_key.clone());
        if let Some(p) = journal.own(&replica, KeyKind::Jwt, SlotState::Prepared) {
            match material::load_jwt(parts.keys.as_ref(), p) {
                Ok(k) => {
                    held.jwt.insert(p.id.clone(), k);
                }
                Err(e) => {
                    tracing::warn!(slot = %p.id, error = %e, "a prepared JWT key cannot be loaded")
                }
            }
        }

        let (kind, authority) =
            adopt_x509(&parts, &journal, &jwt_key, &mut writes, &mut held, now)?;
        let authority = authority.with_jwt_authorities(&held.upstream_jwt);
        let current =
            CurrentAuthority::new(authority, Arc::clone(&parts.store), parts.metrics.clone());
        let lease = RotationLease::new(
            Arc::clone(&parts.store),
            parts.replica.clone(),
            parts.lease_ttl,
            Arc::clone(&parts.clock),
        );
        let engine = Self {
            inner: Arc::new(Inner {
                replica: parts.replica,
                store: parts.store,
                keys: parts.keys,
                clock: parts.clock,
                schedule: parts.schedule,
                lease,
                limits: parts.limits,
                source: parts.source,
                kind,
                jwt_key_ttl: parts.jwt_key_ttl,
                metrics: parts.metrics,
                current,
                held: Mutex::new(held),
                swap: tokio::sync::Mutex::new(()),
            }),
        };
        if !writes.is_empty() {
            engine.write_at_start(&writes, parts.lease_ttl).await?;
        }
        engine.inner.current.publish(now).await?;
        engine.observe(&Journal::new(engine.inner.store.list_key_slots().await?));
        Ok(engine)
    }

    /// The authority and bundle this engine keeps current.
    pub fn current(&self) -> &CurrentAuthority {
        &self.inner.current
    }

    /// Replaces the upstream meshid CA's JWT keys published beside this
    /// CA's own (taken at every renewal).
    pub fn set_upstream_jwt(&self, keys: Vec<JwtAuthority>) {
        self.held().upstream_jwt = keys;
    }

    /// This replica's ID.
    pub fn replica(&self) -> &ReplicaId {
        &self.inner.replica
    }

    /// Writes the slots start-up adopted or made, under the lease; waits
    /// (bounded: two lease lives) while another replica holds it.
    async fn write_at_start(
        &self,
        writes: &[KeySlot],
        lease_ttl: Duration,
    ) -> Result<(), RotationError> {
        let deadline = tokio::time::Instant::now() + 2 * lease_ttl;
        loop {
            let result = self
                .inner
                .lease
                .run("start", |lease| async move {
                    put_all(self.inner.store.as_ref(), writes, &lease).await
                })
                .await;
            match result {
                Err(RotationError::Lease(super::LeaseError::Busy { .. }))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }

    /// Publishes the bundle of the journal, takes every step due now
    /// (under the lease), then publishes again if one was taken; true if a
    /// step was taken. Another
    /// replica holding the lease is not an error: the step is taken on a
    /// later tick (by whoever holds the lease then, for steps any replica
    /// may take).
    pub async fn tick(&self) -> Result<bool, RotationError> {
        let now = self.inner.clock.now();
        let journal = Journal::new(self.inner.store.list_key_slots().await?);
        self.observe(&journal);
        // The bundle of the journal as it is (nothing is written when it
        // is stored already): a publish that failed after an earlier step
        // is made up for before anything is activated, and slots that
        // expired leave the bundle.
        self.inner.current.publish(now).await?;
        if self.due(&journal, now).is_empty() {
            return Ok(false);
        }
        let result = self
            .inner
            .lease
            .run("scheduled", |lease| async move {
                let journal = Journal::new(self.inner.store.list_key_slots().await?);
                let mut taken = 0;
                for step in self.due(&journal, now) {
                    self.take(&step, &lease, now).await?;
                    taken += 1;
                }
                Ok::<_, RotationError>(taken)
            })
            .await;
        match result {
            Ok(0) => Ok(false),
            Ok(_) => self.after_write(now).await.map(|()| true),
            Err(RotationError::Lease(super::LeaseError::Busy { .. })) => {
                tracing::debug!("another CA replica holds the rotation lease; stepping later");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The steps due at `now`: this replica's own, and forgetting any
    /// replica's retired slots once their SVIDs have expired.
    fn due(&self, journal: &Journal, now: SystemTime) -> Vec<Step> {
        let me = self.inner.replica.as_str();
        let mut steps: Vec<Step> = [KeyKind::X509, KeyKind::Jwt]
            .into_iter()
            .filter_map(|kind| {
                journal.due(me, kind, self.self_managed(kind), &self.inner.schedule, now)
            })
            .collect();
        steps.extend(journal.forgettable(now));
        steps
    }

    /// Whether this replica makes its own keys of `kind`.
    pub(super) fn self_managed(&self, kind: KeyKind) -> bool {
        match kind {
            KeyKind::Jwt => true,
            KeyKind::X509 => {
                matches!(self.inner.source, X509Source::SelfSigned { .. })
                    && !self.inner.keys.owns_ca_key()
            }
        }
    }

    pub(super) fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("replica", &self.inner.replica)
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

/// Writes every slot of `slots`, fenced by `lease`.
pub(super) async fn put_all(
    store: &dyn Store,
    slots: &[KeySlot],
    lease: &Lease,
) -> Result<(), RotationError> {
    for slot in slots {
        store.put_key_slot(slot, lease).await?;
    }
    Ok(())
}
