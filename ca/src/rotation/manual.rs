//! The operator's rotation commands (the admin API's `ListKeySlots`,
//! `PrepareKey`, `ActivateKey`, `TaintKey`, `RevokeKey`) and a new
//! intermediate arriving from files or an upstream CA ([`Engine::offer`]).
//! Each runs under the rotation lease and publishes the bundle after.

use std::time::SystemTime;

use super::engine::{Engine, put_all};
use super::{Journal, RotationError, Step, material};
use crate::authority::Authority;
use crate::store::{KeyKind, KeySlot, SlotState};

/// A slot with how many unexpired SVIDs its key signed.
#[derive(Debug, Clone)]
pub struct SlotView {
    /// The slot.
    pub slot: KeySlot,
    /// Unexpired SVIDs recorded as signed by its key (X.509 only).
    pub live_svids: u64,
}

/// What [`Engine::offer`] did with a new intermediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// It is the one signing already.
    Same,
    /// Every root it needs was published: it signs now.
    Activated,
    /// Its root is new: published now, it signs after the propagation delay.
    Prepared,
}

// === impl Engine ===

impl Engine {
    /// Every replica's slots, with their live SVID counts.
    pub async fn slots(&self) -> Result<Vec<SlotView>, RotationError> {
        let store = self.inner.store.as_ref();
        let slots = store.list_key_slots().await?;
        let live = store.live_issuances_by_key().await?;
        Ok(slots
            .into_iter()
            .map(|slot| {
                let live_svids = live
                    .iter()
                    .find(|(k, _)| *k == slot.key_id)
                    .map_or(0, |(_, n)| *n);
                SlotView { slot, live_svids }
            })
            .collect())
    }

    /// Makes this replica's next key of `kind` now (published, not
    /// signing). Refused if one is prepared already, or (X.509) when this
    /// CA does not make its own keys.
    pub async fn prepare(&self, kind: KeyKind) -> Result<KeySlot, RotationError> {
        if !self.self_managed(kind) {
            let refusal = match &self.inner.source {
                material::X509Source::Upstream { refusal } => refusal.clone(),
                material::X509Source::SelfSigned { .. } => {
                    return Err(material::mint_root_refusal(self.inner.keys.as_ref()));
                }
            };
            return Err(RotationError::NotSelfManaged(refusal));
        }
        let now = self.inner.clock.now();
        let me = self.inner.replica.as_str().to_owned();
        let slot = self
            .inner
            .lease
            .run("prepare", |lease| async move {
                let journal = self.journal().await?;
                if let Some(p) = journal.own(&me, kind, SlotState::Prepared) {
                    return Err(RotationError::AlreadyPrepared {
                        kind,
                        slot: p.id.clone(),
                    });
                }
                self.take(&Step::Prepare(kind), &lease, now).await?;
                let journal = self.journal().await?;
                journal
                    .own(&me, kind, SlotState::Prepared)
                    .cloned()
                    .ok_or(RotationError::NothingPrepared(kind))
            })
            .await?;
        self.after_write(now).await?;
        Ok(slot)
    }

    /// Activates this replica's prepared key of `kind`; refused before it
    /// has propagated unless `force`.
    pub async fn activate(&self, kind: KeyKind, force: bool) -> Result<KeySlot, RotationError> {
        let now = self.inner.clock.now();
        let me = self.inner.replica.as_str().to_owned();
        let slot = self
            .inner
            .lease
            .run("activate", |lease| async move {
                let journal = self.journal().await?;
                let prepared = journal
                    .own(&me, kind, SlotState::Prepared)
                    .ok_or(RotationError::NothingPrepared(kind))?;
                let ready = self.inner.schedule.propagated_at(prepared);
                if !force && now < ready {
                    let published = now.duration_since(prepared.prepared_at).unwrap_or_default();
                    return Err(RotationError::NotPropagated {
                        kind,
                        published_secs: published.as_secs(),
                        delay_secs: self.inner.schedule.config().propagation_delay.as_secs(),
                    });
                }
                let id = prepared.id.clone();
                self.take(&Step::Activate(kind), &lease, now).await?;
                let journal = self.journal().await?;
                journal
                    .get(&id)
                    .cloned()
                    .ok_or(RotationError::NothingPrepared(kind))
            })
            .await?;
        self.after_write(now).await?;
        Ok(slot)
    }

    /// Marks every slot whose key ID is `key_id` tainted: agents re-issue
    /// what it signed at once. This replica's tainted active key is
    /// followed at once (a successor prepared now, activated once it has
    /// propagated); another replica's does so on its next refresh.
    pub async fn taint(&self, key_id: &str) -> Result<KeySlot, RotationError> {
        let now = self.inner.clock.now();
        let me = self.inner.replica.as_str().to_owned();
        let slot = self
            .inner
            .lease
            .run("taint", |lease| async move {
                let journal = self.journal().await?;
                let mut tainted: Vec<KeySlot> = journal.by_key_id(key_id).cloned().collect();
                if tainted.is_empty() {
                    return Err(RotationError::UnknownKey(key_id.to_owned()));
                }
                for s in &mut tainted {
                    s.tainted = true;
                    s.updated_at = now;
                }
                put_all(self.inner.store.as_ref(), &tainted, &lease).await?;
                tracing::warn!(
                    key_id,
                    "key tainted: agents re-issue everything it signed now"
                );
                for s in &tainted {
                    let mine_active = s.replica == me && s.state == SlotState::Active;
                    let journal = self.journal().await?;
                    if mine_active
                        && self.self_managed(s.kind)
                        && journal.own(&me, s.kind, SlotState::Prepared).is_none()
                    {
                        self.take(&Step::Prepare(s.kind), &lease, now).await?;
                    }
                    self.inner.metrics.rotation_step(s.kind.as_str(), "taint");
                }
                Ok(tainted.swap_remove(0))
            })
            .await?;
        self.after_write(now).await?;
        let journal = self.journal().await?;
        self.observe(&journal);
        Ok(slot)
    }

    /// Removes the retired slots of `key_id` from the journal and the
    /// bundle. Refused for a prepared or active key, and while unexpired
    /// SVIDs it signed remain unless `force`.
    pub async fn revoke(&self, key_id: &str, force: bool) -> Result<KeySlot, RotationError> {
        let now = self.inner.clock.now();
        let live = self.inner.store.live_issuances_by_key().await?;
        let count = live
            .iter()
            .find(|(k, _)| k == key_id)
            .map_or(0, |(_, n)| *n);
        let slot = self
            .inner
            .lease
            .run("revoke", |lease| async move {
                let journal = self.journal().await?;
                let slots: Vec<KeySlot> = journal.by_key_id(key_id).cloned().collect();
                let Some(first) = slots.first().cloned() else {
                    return Err(RotationError::UnknownKey(key_id.to_owned()));
                };
                if let Some(s) = slots.iter().find(|s| s.state != SlotState::Old) {
                    return Err(RotationError::InUse {
                        key_id: key_id.to_owned(),
                        state: s.state.as_str(),
                    });
                }
                if count > 0 && !force {
                    let until = slots
                        .iter()
                        .filter_map(|s| s.publish_until)
                        .max()
                        .map_or_else(|| "unknown".to_owned(), show);
                    return Err(RotationError::LiveSvids {
                        key_id: key_id.to_owned(),
                        count,
                        until,
                    });
                }
                for s in &slots {
                    self.inner.store.delete_key_slot(&s.id, &lease).await?;
                    self.inner.metrics.rotation_step(s.kind.as_str(), "revoke");
                }
                tracing::warn!(
                    key_id,
                    live_svids = count,
                    "key revoked: it left the bundle"
                );
                Ok(first)
            })
            .await?;
        self.after_write(now).await?;
        Ok(slot)
    }

    /// Takes `new` (a replaced intermediate from files, or one renewed from
    /// the upstream meshid CA, already checked as at start-up): a prepared
    /// slot, activated at once when every root it needs is in the bundle
    /// served now, else once it has propagated.
    pub async fn offer(&self, new: Authority) -> Result<Offered, RotationError> {
        let now = self.inner.clock.now();
        let me = self.inner.replica.as_str().to_owned();
        if new.x509_key_id() == self.inner.current.load().x509_key_id()
            && new.cert_chain() == self.inner.current.load().cert_chain()
        {
            return Ok(Offered::Same);
        }
        let published = self.inner.current.bundle();
        let known = new
            .material()
            .roots
            .iter()
            .all(|r| published.x509_authorities.contains(r));
        let offered = self
            .inner
            .lease
            .run("offer", |lease| async move {
                let journal = self.journal().await?;
                let store = self.inner.store.as_ref();
                // An earlier offer that was not activated yet is replaced.
                if let Some(p) = journal.own(&me, KeyKind::X509, SlotState::Prepared) {
                    store.delete_key_slot(&p.id, &lease).await?;
                }
                let journal = self.journal().await?;
                let generation = journal.next_generation(&me, KeyKind::X509);
                let slot = material::x509_slot(
                    &me,
                    generation,
                    SlotState::Prepared,
                    &new,
                    material::upstream_key_slot(self.inner.keys.as_ref()),
                    now,
                );
                store.put_key_slot(&slot, &lease).await?;
                self.held()
                    .x509
                    .insert(slot.id.clone(), new.material().clone());
                self.inner.metrics.rotation_step("x509", "prepare");
                if known {
                    self.take(&Step::Activate(KeyKind::X509), &lease, now)
                        .await?;
                    return Ok(Offered::Activated);
                }
                Ok::<_, RotationError>(Offered::Prepared)
            })
            .await?;
        self.after_write(now).await?;
        Ok(offered)
    }

    pub(super) async fn journal(&self) -> Result<Journal, RotationError> {
        Ok(Journal::new(self.inner.store.list_key_slots().await?))
    }
}

fn show(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
