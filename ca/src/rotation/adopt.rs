//! Start-up: adopting this replica's slots from the journal. The active
//! slots are loaded back from the key manager; a data directory of a CA
//! from before the journal (`x509-ca` + `ca.crt.pem`, `jwt`) becomes
//! generation 1; an expired active key is followed by a new generation at
//! once; under an upstream, the intermediate the files (or the upstream
//! CA) hold now is the active one. What changed is returned as slots to
//! write.

use std::time::SystemTime;

use meshid_identity::PrivateKey;

use super::engine::{EngineParts, Held};
use super::material::{self, X509Source};
use super::{Journal, RotationError};
use crate::authority::Authority;
use crate::store::{KeyKind, KeySlot, SlotState};
use crate::upstream::{CaMaterial, SelfSigned, UpstreamAuthority};

/// This replica's active JWT key: the journal's, else the key of an
/// existing data directory (or a new one) as generation 1, else (the
/// active one expired) a new generation.
pub(super) fn adopt_jwt(
    parts: &EngineParts,
    journal: &Journal,
    writes: &mut Vec<KeySlot>,
    now: SystemTime,
) -> Result<(String, PrivateKey), RotationError> {
    let me = parts.replica.as_str();
    let keys = parts.keys.as_ref();
    if let Some(active) = journal.own(me, KeyKind::Jwt, SlotState::Active)
        && active.not_after > now
    {
        return Ok((active.id.clone(), material::load_jwt(keys, active)?));
    }
    let generation = journal.next_generation(me, KeyKind::Jwt);
    let key = if generation == 1 {
        keys.load_or_generate(&material::jwt_key_slot(1))
            .map_err(|e| RotationError::Material(e.to_string()))?
    } else {
        material::mint_jwt(keys, generation)?
    };
    let validity = (now, now + parts.jwt_key_ttl);
    let slot = material::jwt_slot(
        keys,
        me,
        (generation, SlotState::Active),
        &key,
        validity,
        now,
    );
    retire_active(parts, journal, KeyKind::Jwt, writes, now);
    let id = slot.id.clone();
    writes.push(slot);
    Ok((id, key))
}

/// This replica's active X.509 authority (and where it comes from).
pub(super) fn adopt_x509(
    parts: &EngineParts,
    journal: &Journal,
    jwt_key: &PrivateKey,
    writes: &mut Vec<KeySlot>,
    held: &mut Held,
    now: SystemTime,
) -> Result<(&'static str, Authority), RotationError> {
    let me = parts.replica.as_str();
    let keys = parts.keys.as_ref();
    let assemble = |kind: &'static str, m: CaMaterial| {
        Authority::assemble(parts.limits.clone(), kind, m, jwt_key, now)
            .map_err(|e| RotationError::Material(e.to_string()))
    };
    if let Some((kind, material)) = &parts.upstream {
        // The files (or the upstream CA) hold what signs: it is active.
        let authority = assemble(kind, material.clone())?;
        let existing = journal.slots().iter().find(|s| {
            s.replica == me && s.kind == KeyKind::X509 && s.key_id == authority.x509_key_id()
        });
        let slot = match existing {
            Some(s) if s.state == SlotState::Active => s.clone(),
            Some(s) => {
                retire_active(parts, journal, KeyKind::X509, writes, now);
                let mut s = s.clone();
                s.state = SlotState::Active;
                s.activated_at = Some(now);
                s.retired_at = None;
                s.publish_until = None;
                s.updated_at = now;
                writes.push(s.clone());
                s
            }
            None => {
                retire_active(parts, journal, KeyKind::X509, writes, now);
                let generation = journal.next_generation(me, KeyKind::X509);
                let s = material::x509_slot(
                    me,
                    generation,
                    SlotState::Active,
                    &authority,
                    material::upstream_key_slot(keys),
                    now,
                );
                writes.push(s.clone());
                s
            }
        };
        held.x509.insert(slot.id, material.clone());
        return Ok((kind, authority));
    }
    let X509Source::SelfSigned { data_dir, ttl } = &parts.source else {
        return Err(RotationError::Material(
            "an upstream CA gave no intermediate".into(),
        ));
    };
    if let Some(p) = journal.own(me, KeyKind::X509, SlotState::Prepared) {
        match material::load_x509(keys, p) {
            Ok(m) => {
                held.x509.insert(p.id.clone(), m);
            }
            Err(e) => tracing::warn!(slot = %p.id, error = %e, "a prepared root cannot be loaded"),
        }
    }
    if let Some(active) = journal.own(me, KeyKind::X509, SlotState::Active)
        && active.not_after > now
    {
        let m = material::load_x509(keys, active)?;
        held.x509.insert(active.id.clone(), m.clone());
        return Ok(("self-signed", assemble("self-signed", m)?));
    }
    let generation = journal.next_generation(me, KeyKind::X509);
    let material = if generation == 1 {
        // A data directory of a CA from before the journal: its root
        // (or a new one) is generation 1.
        let td = &parts.limits.trust_domain;
        SelfSigned::new(data_dir, *ttl)
            .obtain(td, keys, now)
            .map_err(|e| RotationError::Material(e.to_string()))?
    } else {
        material::mint_root(
            keys,
            &parts.limits.trust_domain,
            data_dir,
            generation,
            *ttl,
            now,
        )?
    };
    let authority = assemble("self-signed", material.clone())?;
    retire_active(parts, journal, KeyKind::X509, writes, now);
    let slot = material::x509_slot(
        me,
        generation,
        SlotState::Active,
        &authority,
        material::x509_key_slot(generation),
        now,
    );
    held.x509.insert(slot.id.clone(), material);
    writes.push(slot);
    Ok(("self-signed", authority))
}

/// Retires this replica's active slot of `kind` (if any) at `now`.
fn retire_active(
    parts: &EngineParts,
    journal: &Journal,
    kind: KeyKind,
    writes: &mut Vec<KeySlot>,
    now: SystemTime,
) {
    if let Some(active) = journal.own(parts.replica.as_str(), kind, SlotState::Active) {
        let until = parts.schedule.publish_until(kind, now);
        writes.push(super::journal::retired(active, until, now));
    }
}
