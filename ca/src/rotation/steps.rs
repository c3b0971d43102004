//! The steps themselves: [`Engine::take`] makes the next key (prepare),
//! makes the prepared one sign (activate) or drops a retired slot whose
//! SVIDs have expired (forget), each write fenced by the rotation lease.

use std::time::SystemTime;

use super::engine::{Engine, put_all};
use super::material::{self, X509Source};
use super::{Journal, RotationError, Step};
use crate::authority::Authority;
use crate::store::{KeyKind, KeySlot, Lease, SlotState};
use crate::upstream::CaMaterial;

// === impl Engine ===

impl Engine {
    /// Takes `step` at `now`, fenced by `lease`.
    pub(super) async fn take(
        &self,
        step: &Step,
        lease: &Lease,
        now: SystemTime,
    ) -> Result<(), RotationError> {
        let store = self.inner.store.as_ref();
        let journal = Journal::new(store.list_key_slots().await?);
        let me = self.inner.replica.as_str();
        match step {
            Step::Prepare(kind) => {
                let slot = self.make(*kind, &journal, now)?;
                store.put_key_slot(&slot, lease).await?;
                tracing::info!(slot = %slot.id, key_id = %slot.key_id, "prepared the next {kind} key: published, not signing yet");
                self.inner.metrics.rotation_step(kind.as_str(), "prepare");
            }
            Step::Activate(kind) => {
                let prepared = journal
                    .own(me, *kind, SlotState::Prepared)
                    .ok_or(RotationError::NothingPrepared(*kind))?;
                self.check_held(prepared)?;
                let _swap = self.inner.swap.lock().await;
                let active = journal.own(me, *kind, SlotState::Active);
                let until = self.inner.schedule.publish_until(*kind, now);
                let written = super::journal::activation(prepared, active, until, now);
                put_all(store, &written, lease).await?;
                tracing::info!(slot = %prepared.id, key_id = %prepared.key_id, "activated the prepared {kind} key: it signs from now on");
                self.inner.metrics.rotation_step(kind.as_str(), "activate");
                let journal = Journal::new(store.list_key_slots().await?);
                self.observe(&journal);
            }
            Step::Forget(id) => {
                if let Some(slot) = journal.get(id) {
                    store.delete_key_slot(id, lease).await?;
                    tracing::info!(slot = %id, key_id = %slot.key_id, "retired key left the bundle: everything it signed has expired");
                    self.inner
                        .metrics
                        .rotation_step(slot.kind.as_str(), "retire");
                    let mut held = self.held();
                    held.x509.remove(id);
                    held.jwt.remove(id);
                }
            }
        }
        Ok(())
    }

    /// Makes this replica's next key of `kind` as a prepared slot and
    /// holds its private half.
    fn make(
        &self,
        kind: KeyKind,
        journal: &Journal,
        now: SystemTime,
    ) -> Result<KeySlot, RotationError> {
        let me = self.inner.replica.as_str();
        let generation = journal.next_generation(me, kind);
        let keys = self.inner.keys.as_ref();
        match kind {
            KeyKind::X509 => {
                let (data_dir, ttl) = match &self.inner.source {
                    X509Source::SelfSigned { data_dir, ttl } => (data_dir, ttl),
                    X509Source::Upstream { refusal } => {
                        return Err(RotationError::NotSelfManaged(refusal.clone()));
                    }
                };
                let td = &self.inner.limits.trust_domain;
                let material = material::mint_root(keys, td, data_dir, generation, *ttl, now)?;
                let authority = self.assemble(material.clone(), now)?;
                let slot = material::x509_slot(
                    me,
                    generation,
                    SlotState::Prepared,
                    &authority,
                    material::x509_key_slot(generation),
                    now,
                );
                self.held().x509.insert(slot.id.clone(), material);
                Ok(slot)
            }
            KeyKind::Jwt => {
                let key = material::mint_jwt(keys, generation)?;
                let validity = (now, now + self.inner.jwt_key_ttl);
                let slot = material::jwt_slot(
                    keys,
                    me,
                    (generation, SlotState::Prepared),
                    &key,
                    validity,
                    now,
                );
                self.held().jwt.insert(slot.id.clone(), key);
                Ok(slot)
            }
        }
    }

    /// An authority of `material` with the current JWT key and limits.
    pub(super) fn assemble(
        &self,
        material: CaMaterial,
        now: SystemTime,
    ) -> Result<Authority, RotationError> {
        let jwt = self.inner.current.load().jwt_private().clone();
        Authority::assemble(
            self.inner.limits.clone(),
            self.inner.kind,
            material,
            &jwt,
            now,
        )
        .map_err(|e| RotationError::Material(e.to_string()))
    }

    /// The private half of `slot` is held (loading a self-made one from
    /// the key manager if needed), so activating it cannot strand the CA.
    pub(super) fn check_held(&self, slot: &KeySlot) -> Result<(), RotationError> {
        let keys = self.inner.keys.as_ref();
        let mut held = self.held();
        match slot.kind {
            KeyKind::X509 if !held.x509.contains_key(&slot.id) => {
                let m = material::load_x509(keys, slot)?;
                held.x509.insert(slot.id.clone(), m);
            }
            KeyKind::Jwt if !held.jwt.contains_key(&slot.id) => {
                let k = material::load_jwt(keys, slot)?;
                held.jwt.insert(slot.id.clone(), k);
            }
            _ => {}
        }
        Ok(())
    }

    /// After a journal write: publish the bundle and have the refresher
    /// (of this and, through the store, every replica) see it.
    pub(super) async fn after_write(&self, now: SystemTime) -> Result<(), RotationError> {
        self.inner.current.publish(now).await?;
        Ok(())
    }
}
