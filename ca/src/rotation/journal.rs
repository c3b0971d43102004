//! The key journal as the engine reads it: [`Journal`], every replica's
//! [`KeySlot`]s, and what follows from them — which slots sign, which are
//! published (the trust bundle is derived from them), which step is due
//! next ([`Journal::due`]), and the slots a step writes.

use std::time::SystemTime;

use meshid_identity::JwtAuthority;
use meshid_identity::x509::pem_certs;
use rustls_pki_types::CertificateDer;

use super::schedule::Schedule;
use crate::store::{KeyKind, KeySlot, SlotState};

/// A rotation step one replica takes for one kind of key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Make the next key and publish it.
    Prepare(KeyKind),
    /// Make the prepared key sign (the active one retires).
    Activate(KeyKind),
    /// Remove a retired slot whose SVIDs have all expired (any replica's).
    Forget(String),
}

/// Every replica's key slots, as last read from the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Journal {
    slots: Vec<KeySlot>,
}

// === impl Journal ===

impl Journal {
    /// The journal of `slots`.
    pub fn new(slots: Vec<KeySlot>) -> Self {
        Self { slots }
    }

    /// Every slot, in the store's order.
    pub fn slots(&self) -> &[KeySlot] {
        &self.slots
    }

    /// `replica`'s newest slot of `kind` in `state`.
    pub fn own(&self, replica: &str, kind: KeyKind, state: SlotState) -> Option<&KeySlot> {
        self.slots
            .iter()
            .filter(|s| s.replica == replica && s.kind == kind && s.state == state)
            .max_by_key(|s| s.generation)
    }

    /// The slot with ID `id`.
    pub fn get(&self, id: &str) -> Option<&KeySlot> {
        self.slots.iter().find(|s| s.id == id)
    }

    /// The generation `replica`'s next key of `kind` gets.
    pub fn next_generation(&self, replica: &str, kind: KeyKind) -> u32 {
        self.slots
            .iter()
            .filter(|s| s.replica == replica && s.kind == kind)
            .map(|s| s.generation)
            .max()
            .map_or(1, |g| g.saturating_add(1))
    }

    /// Every slot whose key ID is `key_id` (replicas sharing one
    /// intermediate have one each).
    pub fn by_key_id<'a>(&'a self, key_id: &'a str) -> impl Iterator<Item = &'a KeySlot> + 'a {
        self.slots.iter().filter(move |s| s.key_id == key_id)
    }

    /// The slots in the bundle at `now`: unexpired, and retired ones only
    /// until their `publish_until`. Active first, then prepared, then old,
    /// each in ID order, so every replica derives the same bundle.
    pub fn published(&self, now: SystemTime) -> Vec<&KeySlot> {
        let mut out: Vec<&KeySlot> = self
            .slots
            .iter()
            .filter(|s| s.not_after > now)
            .filter(|s| s.state != SlotState::Old || s.publish_until.is_some_and(|t| t > now))
            .collect();
        out.sort_by(|a, b| rank(a.state).cmp(&rank(b.state)).then(a.id.cmp(&b.id)));
        out
    }

    /// The X.509 authorities of the bundle at `now`, each once.
    pub fn x509_roots(&self, now: SystemTime) -> Vec<CertificateDer<'static>> {
        let mut roots: Vec<CertificateDer<'static>> = Vec::new();
        for slot in self.published(now) {
            if slot.kind != KeyKind::X509 {
                continue;
            }
            let Ok(certs) = pem_certs(&slot.roots_pem) else {
                tracing::warn!(slot = %slot.id, "a key slot's roots are unreadable; left out of the bundle");
                continue;
            };
            for c in certs {
                if !roots.contains(&c) {
                    roots.push(c);
                }
            }
        }
        roots
    }

    /// The JWT authorities of the bundle at `now`, each key ID once.
    pub fn jwt_keys(&self, now: SystemTime) -> Vec<JwtAuthority> {
        let mut keys: Vec<JwtAuthority> = Vec::new();
        for slot in self.published(now) {
            if slot.kind != KeyKind::Jwt || keys.iter().any(|k| k.key_id == slot.key_id) {
                continue;
            }
            match spki_from_pem(&slot.public_pem) {
                Some(der) => keys.push(JwtAuthority {
                    key_id: slot.key_id.clone(),
                    public_key_der: der,
                    expires_at: None,
                }),
                None => {
                    tracing::warn!(slot = %slot.id, "a JWT key slot's public key is unreadable; left out of the bundle");
                }
            }
        }
        keys
    }

    /// Key IDs of the X.509 slots in `state` (every replica's), each once,
    /// `tainted` ones only when asked for.
    pub fn x509_key_ids(&self, pick: impl Fn(&KeySlot) -> bool) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for s in self.slots.iter().filter(|s| s.kind == KeyKind::X509) {
            if pick(s) && !ids.contains(&s.key_id) {
                ids.push(s.key_id.clone());
            }
        }
        ids
    }

    /// The next step due at `now` for `replica`'s keys of `kind`.
    /// `self_managed`: this CA makes its own keys of this kind (a
    /// self-signed root, every JWT key); otherwise (an intermediate from
    /// files or an upstream CA) it only activates what was prepared for it.
    pub fn due(
        &self,
        replica: &str,
        kind: KeyKind,
        self_managed: bool,
        schedule: &Schedule,
        now: SystemTime,
    ) -> Option<Step> {
        let active = self.own(replica, kind, SlotState::Active);
        match self.own(replica, kind, SlotState::Prepared) {
            Some(prepared) => {
                let at = if self_managed {
                    schedule.activate_at(active, prepared)
                } else {
                    schedule.propagated_at(prepared)
                };
                (at <= now).then_some(Step::Activate(kind))
            }
            None if self_managed => {
                let due =
                    active.is_none_or(|a| schedule.prepare_at(a) <= now || a.not_after <= now);
                due.then_some(Step::Prepare(kind))
            }
            None => None,
        }
    }

    /// Retired slots (any replica's) whose SVIDs have all expired by `now`.
    pub fn forgettable(&self, now: SystemTime) -> Vec<Step> {
        self.slots
            .iter()
            .filter(|s| s.state == SlotState::Old)
            .filter(|s| s.publish_until.is_none_or(|t| t <= now))
            .map(|s| Step::Forget(s.id.clone()))
            .collect()
    }
}

/// The slots activating `prepared` writes at `now`: it becomes active and
/// `active` (if any) retires, kept in the bundle until `publish_until`.
pub fn activation(
    prepared: &KeySlot,
    active: Option<&KeySlot>,
    publish_until: SystemTime,
    now: SystemTime,
) -> Vec<KeySlot> {
    let mut out = Vec::with_capacity(2);
    if let Some(a) = active {
        out.push(retired(a, publish_until, now));
    }
    let mut new = prepared.clone();
    new.state = SlotState::Active;
    new.activated_at = Some(now);
    new.updated_at = now;
    out.push(new);
    out
}

/// `slot` retired at `now`, kept in the bundle until `publish_until`.
pub fn retired(slot: &KeySlot, publish_until: SystemTime, now: SystemTime) -> KeySlot {
    let mut old = slot.clone();
    old.state = SlotState::Old;
    old.retired_at = Some(now);
    old.publish_until = Some(publish_until);
    old.updated_at = now;
    old
}

fn rank(state: SlotState) -> u8 {
    match state {
        SlotState::Active => 0,
        SlotState::Prepared => 1,
        SlotState::Old => 2,
    }
}

/// The DER of a `PUBLIC KEY` PEM block.
pub(crate) fn spki_from_pem(text: &str) -> Option<Vec<u8>> {
    let block = pem::parse(text).ok()?;
    (block.tag() == "PUBLIC KEY").then(|| block.into_contents())
}

/// A `PUBLIC KEY` PEM block of a SubjectPublicKeyInfo.
pub(crate) fn spki_to_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("PUBLIC KEY", der.to_vec()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use std::time::Duration;

    use meshid_identity::TrustDomain;

    use super::*;
    use crate::authority::AuthorityConfig;
    use crate::config::RotationConfig;

    /// A slot of `replica` valid for `life_secs` from `t0`, prepared at `t0`.
    pub(crate) fn slot(
        replica: &str,
        kind: KeyKind,
        generation: u32,
        state: SlotState,
        t0: SystemTime,
        life_secs: u64,
    ) -> KeySlot {
        KeySlot {
            id: KeySlot::slot_id(replica, kind, generation),
            replica: replica.into(),
            kind,
            generation,
            state,
            key_id: format!("{replica}-{kind}-{generation}"),
            key_slot: format!("{kind}-{generation}"),
            key_ref: String::new(),
            public_pem: String::new(),
            roots_pem: String::new(),
            not_before: t0,
            not_after: t0 + Duration::from_secs(life_secs),
            prepared_at: t0,
            activated_at: (state != SlotState::Prepared).then_some(t0),
            retired_at: None,
            publish_until: None,
            tainted: false,
            updated_at: t0,
        }
    }

    /// The default schedule of a CA with default limits.
    pub(crate) fn schedule() -> Schedule {
        let limits = AuthorityConfig::new(TrustDomain::new("example.org").unwrap());
        Schedule::new(RotationConfig::default(), &limits)
    }

    #[test]
    fn a_self_managed_key_is_prepared_then_activated_on_schedule() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = schedule();
        let active = slot("a", KeyKind::X509, 1, SlotState::Active, t0, 6000);
        let j = Journal::new(vec![active.clone()]);
        let at = |secs| t0 + Duration::from_secs(secs);
        assert_eq!(j.due("a", KeyKind::X509, true, &s, at(2999)), None);
        assert_eq!(
            j.due("a", KeyKind::X509, true, &s, at(3000)),
            Some(Step::Prepare(KeyKind::X509))
        );
        // Another replica's schedule is its own.
        assert_eq!(
            j.due("b", KeyKind::X509, true, &s, at(1)),
            Some(Step::Prepare(KeyKind::X509))
        );
        assert_eq!(j.next_generation("a", KeyKind::X509), 2);
        let mut prepared = slot("a", KeyKind::X509, 2, SlotState::Prepared, at(3000), 6000);
        prepared.prepared_at = at(3000);
        let j = Journal::new(vec![active.clone(), prepared.clone()]);
        assert_eq!(j.due("a", KeyKind::X509, true, &s, at(4999)), None);
        assert_eq!(
            j.due("a", KeyKind::X509, true, &s, at(5000)),
            Some(Step::Activate(KeyKind::X509))
        );
        // Not self-managed: activated once propagated, whatever the schedule.
        assert_eq!(
            j.due("a", KeyKind::X509, false, &s, at(3030)),
            Some(Step::Activate(KeyKind::X509))
        );
        let written = activation(&prepared, Some(&active), at(8600), at(5000));
        assert_eq!(written[0].state, SlotState::Old);
        assert_eq!(written[0].publish_until, Some(at(8600)));
        assert_eq!(written[1].state, SlotState::Active);
        assert_eq!(written[1].activated_at, Some(at(5000)));
    }

    #[test]
    fn the_bundle_holds_published_slots_in_a_fixed_order_until_publish_until() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |secs| t0 + Duration::from_secs(secs);
        let mut old = slot("a", KeyKind::X509, 1, SlotState::Old, t0, 6000);
        old.publish_until = Some(at(100));
        let prepared = slot("b", KeyKind::X509, 1, SlotState::Prepared, t0, 6000);
        let active = slot("c", KeyKind::X509, 1, SlotState::Active, t0, 6000);
        let expired = slot("d", KeyKind::X509, 1, SlotState::Active, t0, 10);
        let j = Journal::new(vec![old, prepared, active, expired]);
        let ids: Vec<&str> = j.published(at(50)).iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["c/x509/1", "b/x509/1", "a/x509/1"]);
        let ids: Vec<&str> = j.published(at(100)).iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["c/x509/1", "b/x509/1"]);
        assert_eq!(j.forgettable(at(100)), [Step::Forget("a/x509/1".into())]);
        assert!(j.forgettable(at(99)).is_empty());
    }

    #[test]
    fn jwt_keys_come_from_their_public_pem() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let key = meshid_identity::PrivateKey::generate_p256().unwrap();
        let mut s = slot("a", KeyKind::Jwt, 1, SlotState::Prepared, t0, 6000);
        s.public_pem = spki_to_pem(&key.public_key_der());
        let j = Journal::new(vec![s]);
        let keys = j.jwt_keys(t0);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].public_key_der, key.public_key_der());
        assert_eq!(keys[0].key_id, "a-jwt-1");
    }
}
