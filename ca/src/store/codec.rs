//! Conversions between domain values and column values, and input checks
//! shared by every backend. Times are stored as unix milliseconds,
//! lifetimes as whole seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshid_identity::{Selector, SpiffeId, TrustDomain};
use sha2::{Digest, Sha256};

use super::StoreError;
use super::model::{
    KeySlot, MAX_DNS_NAMES, MAX_FEDERATES_WITH, MAX_SELECTORS, SlotState, owner_problem,
};
use super::tenancy::tenant_name_problem;

/// Longest DNS name accepted in an entry.
const MAX_DNS_NAME_LEN: usize = 253;
/// Longest free-form key (serial, token ID, slot, attestation type).
const MAX_KEY_LEN: usize = 256;

/// `SystemTime` → unix milliseconds.
pub(crate) fn to_ms(t: SystemTime) -> Result<i64, StoreError> {
    let d = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| StoreError::Invalid("times before 1970 cannot be stored".into()))?;
    i64::try_from(d.as_millis())
        .map_err(|_| StoreError::Invalid("time is too far in the future to store".into()))
}

/// Unix milliseconds → `SystemTime`; negative values are corrupt.
pub(crate) fn from_ms(ms: i64, table: &'static str, key: &str) -> Result<SystemTime, StoreError> {
    u64::try_from(ms)
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
        .map_err(|_| corrupt(table, key, format!("negative timestamp {ms}")))
}

/// A lifetime → whole seconds.
pub(crate) fn to_secs(d: Duration) -> Result<i64, StoreError> {
    i64::try_from(d.as_secs()).map_err(|_| StoreError::Invalid("lifetime is too long".into()))
}

/// Whole seconds → a lifetime; negative values are corrupt.
pub(crate) fn from_secs(s: i64, table: &'static str, key: &str) -> Result<Duration, StoreError> {
    u64::try_from(s)
        .map(Duration::from_secs)
        .map_err(|_| corrupt(table, key, format!("negative lifetime {s}")))
}

/// A [`StoreError::Corrupt`].
pub(crate) fn corrupt(table: &'static str, key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// Parses a stored SPIFFE ID.
pub(crate) fn spiffe_id(s: &str, table: &'static str, key: &str) -> Result<SpiffeId, StoreError> {
    SpiffeId::parse(s).map_err(|e| corrupt(table, key, format!("SPIFFE ID {s:?}: {e}")))
}

/// Parses a stored selector from its two columns.
pub(crate) fn selector(
    kind: &str,
    value: &str,
    table: &'static str,
    key: &str,
) -> Result<Selector, StoreError> {
    Selector::new(kind, value).map_err(|e| corrupt(table, key, format!("selector: {e}")))
}

/// Sorts and de-duplicates selectors, enforcing `1..=MAX_SELECTORS`.
pub(crate) fn canonical_selectors(mut s: Vec<Selector>) -> Result<Vec<Selector>, StoreError> {
    s.sort();
    s.dedup();
    if s.is_empty() {
        return Err(StoreError::Invalid(
            "an entry needs at least one selector (e.g. unix:uid:1000)".into(),
        ));
    }
    if s.len() > MAX_SELECTORS {
        return Err(StoreError::Invalid(format!(
            "{} selectors given; the limit is {MAX_SELECTORS}",
            s.len()
        )));
    }
    Ok(s)
}

/// A fixed-size key identifying a canonical selector set.
pub(crate) fn selector_key(s: &[Selector]) -> String {
    let mut h = Sha256::new();
    for sel in s {
        h.update(sel.kind().as_bytes());
        h.update([0]);
        h.update(sel.value().as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Checks and encodes DNS names as a JSON array.
pub(crate) fn encode_dns_names(names: &[String]) -> Result<String, StoreError> {
    if names.len() > MAX_DNS_NAMES {
        return Err(StoreError::Invalid(format!(
            "{} DNS names given; the limit is {MAX_DNS_NAMES}",
            names.len()
        )));
    }
    if let Some(bad) = names.iter().find(|n| {
        n.is_empty()
            || n.len() > MAX_DNS_NAME_LEN
            || !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'*')
    }) {
        return Err(StoreError::Invalid(format!(
            "DNS name {:?} must be 1-253 chars of letters, digits, '-', '.' or '*'",
            bad.chars().take(80).collect::<String>()
        )));
    }
    serde_json::to_string(names).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Decodes stored DNS names.
pub(crate) fn decode_dns_names(s: &str, key: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s)
        .map_err(|e| corrupt("registration_entries", key, format!("dns_names: {e}")))
}

/// Checks an entry's owner ([`owner_problem`]).
pub(crate) fn check_owner(owner: &str) -> Result<(), StoreError> {
    match owner_problem(owner) {
        None => Ok(()),
        Some(why) => Err(StoreError::Invalid(format!("entry owner {why}"))),
    }
}

/// A stored owner, checked again on the way out.
pub(crate) fn owner(owner: String, key: &str) -> Result<String, StoreError> {
    match owner_problem(&owner) {
        None => Ok(owner),
        Some(why) => Err(corrupt("registration_entries", key, format!("owner {why}"))),
    }
}

/// Checks the tenant of an entry, agent, token or issuance: `""` (the
/// platform) or a tenant name.
pub(crate) fn check_tenant(tenant: &str) -> Result<(), StoreError> {
    match tenant_name_problem(tenant) {
        Some(why) if !tenant.is_empty() => Err(StoreError::Invalid(format!(
            "tenant {:?} {why}",
            tenant.chars().take(80).collect::<String>()
        ))),
        _ => Ok(()),
    }
}

/// A stored tenant column, checked again on the way out.
pub(crate) fn tenant(tenant: String, table: &'static str, key: &str) -> Result<String, StoreError> {
    match tenant_name_problem(&tenant) {
        Some(why) if !tenant.is_empty() => Err(corrupt(table, key, format!("tenant {why}"))),
        _ => Ok(tenant),
    }
}

/// Checks and encodes federated trust domains as a JSON array.
pub(crate) fn encode_trust_domains(tds: &[TrustDomain]) -> Result<String, StoreError> {
    if tds.len() > MAX_FEDERATES_WITH {
        return Err(StoreError::Invalid(format!(
            "{} federated trust domains given; the limit is {MAX_FEDERATES_WITH}",
            tds.len()
        )));
    }
    let names: Vec<&str> = tds.iter().map(TrustDomain::as_str).collect();
    serde_json::to_string(&names).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Decodes stored federated trust domains.
pub(crate) fn decode_trust_domains(s: &str, key: &str) -> Result<Vec<TrustDomain>, StoreError> {
    let names: Vec<String> = serde_json::from_str(s)
        .map_err(|e| corrupt("registration_entries", key, format!("federates_with: {e}")))?;
    names
        .iter()
        .map(|n| {
            TrustDomain::new(n).map_err(|e| {
                corrupt(
                    "registration_entries",
                    key,
                    format!("trust domain {n:?}: {e}"),
                )
            })
        })
        .collect()
}

/// Encodes a tenant's list (already checked by [`Tenant::problem`](super::Tenant::problem)) as a JSON array.
pub(crate) fn encode_strings(list: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(list).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Decodes a stored JSON array of strings.
pub(crate) fn decode_strings(
    s: &str,
    table: &'static str,
    key: &str,
    column: &str,
) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| corrupt(table, key, format!("{column}: {e}")))
}

/// A stored 32-byte hash.
pub(crate) fn hash32(b: &[u8], table: &'static str, key: &str) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(b)
        .map_err(|_| corrupt(table, key, format!("hash is {} bytes, not 32", b.len())))
}

/// Checks a free-form key column (serial, token ID, slot, …).
pub(crate) fn check_key(what: &str, s: &str) -> Result<(), StoreError> {
    if s.is_empty() || s.len() > MAX_KEY_LEN || s.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{what} must be 1-{MAX_KEY_LEN} printable characters"
        )));
    }
    Ok(())
}

/// Largest PEM text of a key slot (`public_pem`, `roots_pem`).
const MAX_SLOT_PEM: usize = 256 * 1024;

/// Checks a key slot before it is stored: bounded fields, the ID is
/// [`KeySlot::slot_id`] of its replica, kind and generation, and the
/// optional times match its state (`activated_at` set once active,
/// `retired_at` set exactly when old).
pub(crate) fn check_key_slot(slot: &KeySlot) -> Result<(), StoreError> {
    check_key("CA key slot ID", &slot.id)?;
    check_key("CA replica", &slot.replica)?;
    check_key("CA key ID", &slot.key_id)?;
    check_key("key manager slot", &slot.key_slot)?;
    check_key("CA key reference", &slot.key_ref)?;
    let want = KeySlot::slot_id(&slot.replica, slot.kind, slot.generation);
    if slot.generation == 0 || slot.id != want {
        return Err(StoreError::Invalid(format!(
            "CA key slot {:?} must be named {want:?} (replica/kind/generation, generation from 1)",
            slot.id
        )));
    }
    for (what, pem) in [
        ("public_pem", &slot.public_pem),
        ("roots_pem", &slot.roots_pem),
    ] {
        if pem.len() > MAX_SLOT_PEM {
            return Err(StoreError::Invalid(format!(
                "CA key slot {}: {what} is {} bytes; the limit is {MAX_SLOT_PEM}",
                slot.id,
                pem.len()
            )));
        }
    }
    let consistent = match slot.state {
        SlotState::Prepared => slot.activated_at.is_none() && slot.retired_at.is_none(),
        SlotState::Active => slot.activated_at.is_some() && slot.retired_at.is_none(),
        SlotState::Old => slot.retired_at.is_some(),
    };
    if !consistent {
        return Err(StoreError::Invalid(format!(
            "CA key slot {} is {} but activated_at is {:?} and retired_at is {:?}; a prepared \
             slot has neither, an active one only activated_at, an old one retired_at",
            slot.id, slot.state, slot.activated_at, slot.retired_at
        )));
    }
    Ok(())
}

/// A fresh random entry ID: 16 random bytes, hex.
pub(crate) fn new_entry_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn selector_key_ignores_order_and_duplicates() {
        let a = Selector::parse("unix:uid:1").unwrap();
        let b = Selector::parse("k8s:ns:x").unwrap();
        let one = canonical_selectors(vec![a.clone(), b.clone(), a.clone()]).unwrap();
        let two = canonical_selectors(vec![b, a]).unwrap();
        assert_eq!(selector_key(&one), selector_key(&two));
    }

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        let t = UNIX_EPOCH + Duration::from_millis(1_790_000_000_123);
        assert_eq!(from_ms(to_ms(t).unwrap(), "t", "k").unwrap(), t);
        assert!(from_ms(-1, "t", "k").is_err());
    }
}
