//! Following the journal every replica shares: this replica's active
//! slots sign ([`Engine::observe`]), the newest stored bundle is served
//! ([`Engine::apply`], from the [`Refresher`]'s reads), and the loop that
//! checks the schedule ([`Engine::run`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_identity::TrustBundle;
use tokio::sync::watch;

use super::engine::Engine;
use super::refresh::{Refresher, SharedState};
use super::{Journal, RotationError};
use crate::authority::{Authority, SigningKeys};
use crate::store::{KeyKind, KeySlot, SlotState};

// === impl Engine ===

impl Engine {
    /// Brings the authority, Sync's key list and the metrics in line with
    /// `journal`: this replica's active slots sign.
    pub(super) fn observe(&self, journal: &Journal) {
        let me = self.inner.replica.as_str();
        let current = &self.inner.current;
        current.set_signing_keys(SigningKeys {
            active: journal.x509_key_ids(|s| s.state == SlotState::Active),
            tainted: journal.x509_key_ids(|s| s.tainted),
            reissue_spread: self.inner.schedule.config().reissue_spread,
        });
        let authority = current.load();
        let x509 = journal.own(me, KeyKind::X509, SlotState::Active);
        let jwt = journal.own(me, KeyKind::Jwt, SlotState::Active);
        let x509_changed = x509.is_some_and(|s| s.key_id != authority.x509_key_id());
        let jwt_changed = jwt.is_some_and(|s| s.key_id != authority.jwt_key_id());
        if x509_changed || jwt_changed {
            let now = self.inner.clock.now();
            match self.rebuild(x509, jwt, &authority, now) {
                Ok(new) => current.swap(new),
                Err(e) => {
                    tracing::error!(error = %e, "cannot sign with the active key of the journal; still signing with the previous one")
                }
            }
        }
        super::alarms::record(self, journal, self.inner.clock.now());
    }

    /// The authority of the active slots `x509` and `jwt` (each `None`:
    /// keep what `authority` has).
    fn rebuild(
        &self,
        x509: Option<&KeySlot>,
        jwt: Option<&KeySlot>,
        authority: &Authority,
        now: SystemTime,
    ) -> Result<Authority, RotationError> {
        if let Some(s) = x509 {
            self.check_held(s)?;
        }
        if let Some(s) = jwt {
            self.check_held(s)?;
        }
        let held = self.held();
        let material = x509
            .and_then(|s| held.x509.get(&s.id).cloned())
            .unwrap_or_else(|| authority.material().clone());
        let jwt_key = jwt
            .and_then(|s| held.jwt.get(&s.id).cloned())
            .unwrap_or_else(|| authority.jwt_private().clone());
        let upstream_jwt = held.upstream_jwt.clone();
        drop(held);
        let new = Authority::assemble(
            self.inner.limits.clone(),
            self.inner.kind,
            material,
            &jwt_key,
            now,
        )
        .map_err(|e| RotationError::Material(e.to_string()))?;
        Ok(new.with_jwt_authorities(&upstream_jwt))
    }

    /// Serves the newest stored bundle and follows the journal as the
    /// refresher reads them. When this replica's active keys seem to have
    /// changed, the journal is read again first: a read that began before
    /// this replica's own last activation must not swap the old key back.
    pub(super) async fn apply(&self, state: &SharedState) {
        if let Some(stored) = &state.bundle
            && let Ok(mut bundle) =
                TrustBundle::from_spiffe_json(stored.trust_domain.clone(), &stored.spiffe_json)
        {
            bundle.sequence = u64::try_from(stored.sequence).unwrap_or(0);
            if self.inner.current.serve_bundle(bundle) {
                tracing::debug!(
                    sequence = stored.sequence,
                    "serving the newer stored trust bundle"
                );
            }
        }
        let journal = Journal::new(state.slots.clone());
        if !self.own_keys_differ(&journal) {
            self.observe(&journal);
            return;
        }
        let _swap = self.inner.swap.lock().await;
        match self.journal().await {
            Ok(fresh) => self.observe(&fresh),
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read the CA key journal; retrying at the next refresh")
            }
        }
    }

    /// Whether `journal` names other active keys of this replica than the
    /// ones signing.
    fn own_keys_differ(&self, journal: &Journal) -> bool {
        let me = self.inner.replica.as_str();
        let authority = self.inner.current.load();
        let differs = |kind, id: &str| {
            journal
                .own(me, kind, SlotState::Active)
                .is_some_and(|s| s.key_id != id)
        };
        differs(KeyKind::X509, authority.x509_key_id())
            || differs(KeyKind::Jwt, authority.jwt_key_id())
    }

    /// Runs the engine until `shutdown` turns true: the refresher re-reads
    /// the store every `refresh_interval` (each change is applied), and the
    /// schedule is checked as often. A step that keeps failing the same way
    /// is logged once, not at every tick.
    pub async fn run(self, refresh_interval: Duration, shutdown: watch::Receiver<bool>) {
        let td = self.inner.limits.trust_domain.clone();
        let refresher = Refresher::new(Arc::clone(&self.inner.store), td, refresh_interval);
        let (tx, mut rx) = watch::channel(SharedState::default());
        let task = tokio::spawn(refresher.clone().run(tx, shutdown.clone()));
        let mut stop = shutdown;
        let mut tick = tokio::time::interval(refresh_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing: Option<String> = None;
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() { break; }
                    let state = rx.borrow_and_update().clone();
                    self.apply(&state).await;
                }
                _ = tick.tick() => match self.tick().await {
                    Ok(stepped) => {
                        if failing.take().is_some() {
                            tracing::info!("rotation steps succeed again");
                        }
                        if stepped {
                            // Serve what was just written without waiting.
                            refresher.refresh_now();
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        if failing.as_deref() != Some(message.as_str()) {
                            tracing::warn!(error = %message, "a rotation step failed; retrying at every tick");
                            failing = Some(message);
                        }
                    }
                },
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() { break; }
                }
            }
        }
        task.abort();
    }
}
