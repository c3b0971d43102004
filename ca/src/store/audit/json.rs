//! The JSON an audit record shows of an object before and after a change.
//! Stable keys, times as unix milliseconds; a join token's hash is never
//! shown.

use std::time::SystemTime;

use meshid_identity::{Selector, SpiffeId, TrustDomain};
use serde_json::{Value, json};

use crate::store::model::{Agent, IssuanceRecord, JoinToken, RegistrationEntry, StoredBundle};
use crate::store::tenancy::{RoleBinding, Tenant};

fn ms(t: SystemTime) -> i64 {
    crate::store::codec::to_ms(t).unwrap_or(-1)
}

fn selectors(s: &[Selector]) -> Vec<String> {
    s.iter().map(Selector::to_string).collect()
}

fn tds(t: &[TrustDomain]) -> Vec<&str> {
    t.iter().map(TrustDomain::as_str).collect()
}

/// A registration entry.
pub(crate) fn entry_json(e: &RegistrationEntry) -> String {
    json!({
        "id": e.id,
        "spiffe_id": e.spiffe_id.as_str(),
        "parent_id": e.parent_id.as_str(),
        "selectors": selectors(&e.selectors),
        "x509_ttl_secs": e.x509_ttl.as_secs(),
        "jwt_ttl_secs": e.jwt_ttl.as_secs(),
        "dns_names": e.dns_names,
        "admin": e.admin,
        "federates_with": tds(&e.federates_with),
        "downstream": e.downstream,
        "owner": e.owner,
        "tenant": e.tenant,
        "revision": e.revision,
    })
    .to_string()
}

/// A join token, without its hash.
pub(crate) fn token_json(t: &JoinToken) -> String {
    json!({
        "id": t.id,
        "spiffe_id": t.spiffe_id.as_ref().map(SpiffeId::as_str),
        "expires_at_ms": ms(t.expires_at),
        "used_at_ms": t.used_at.map(ms),
        "tenant": t.tenant,
    })
    .to_string()
}

/// An agent.
pub(crate) fn agent_json(a: &Agent) -> String {
    json!({
        "spiffe_id": a.spiffe_id.as_str(),
        "attestation_type": a.attestation_type,
        "serial": a.serial,
        "expires_at_ms": ms(a.expires_at),
        "banned": a.banned,
        "selectors": selectors(&a.selectors),
        "tenant": a.tenant,
    })
    .to_string()
}

/// A trust bundle (its document inline when it is JSON).
pub(crate) fn bundle_json(b: &StoredBundle) -> String {
    let doc = serde_json::from_slice::<Value>(&b.spiffe_json)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&b.spiffe_json).into_owned()));
    json!({
        "trust_domain": b.trust_domain.as_str(),
        "sequence": b.sequence,
        "bundle": doc,
    })
    .to_string()
}

/// A tenant.
pub(crate) fn tenant_json(t: &Tenant) -> String {
    json!({
        "name": t.name,
        "spiffe_id_prefixes": t.spiffe_id_prefixes,
        "k8s_namespaces": t.k8s_namespaces,
        "allowed_parents": t.allowed_parents,
        "federates_with": tds(&t.federates_with),
    })
    .to_string()
}

/// A role binding.
pub(crate) fn binding_json(b: &RoleBinding) -> String {
    json!({
        "subject": b.subject,
        "role": b.role.as_str(),
        "tenant": b.tenant,
    })
    .to_string()
}

/// Certificates issued in one batch (the `after` of `svid.issue`):
/// `{"svids": [{entry, spiffe_id, serial, not_after_ms, agent, key_id}, …]}`.
pub(crate) fn issuances_json(records: &[&IssuanceRecord]) -> String {
    let svids: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "entry": r.entry_id,
                "spiffe_id": r.spiffe_id.as_str(),
                "serial": r.serial,
                "not_after_ms": ms(r.not_after),
                "agent": r.agent_id.as_ref().map(SpiffeId::as_str),
                "key_id": r.ca_key_id,
            })
        })
        .collect();
    json!({ "svids": svids }).to_string()
}
