//! Conversions between wire types (`meshid_proto::ca`) and store types.
//!
//! Outbound conversions (store → proto) cannot fail. Inbound ones (proto →
//! store) validate everything with [`super::validate`]: what comes off the
//! wire is hostile.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshid_identity::{Selector, TrustBundle, TrustDomain};
use meshid_proto::ca as pb;

use super::validate::{self, InvalidInput};
use crate::store::{Agent, EntryUpdate, NewEntry, RegistrationEntry, RoleBinding, Tenant};

/// Unix seconds of `t` (negative before 1970).
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// Whole seconds of `d`, saturating at `u32::MAX`.
pub fn seconds_u32(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// A selector on the wire.
pub fn selector_to_proto(s: &Selector) -> pb::Selector {
    pb::Selector {
        r#type: s.kind().to_owned(),
        value: s.value().to_owned(),
    }
}

/// A selector off the wire, validated.
pub fn selector_from_proto(s: &pb::Selector) -> Result<Selector, InvalidInput> {
    validate::selector(&s.r#type, &s.value)
}

/// A registration entry on the wire.
pub fn entry_to_proto(e: &RegistrationEntry) -> pb::Entry {
    pb::Entry {
        id: e.id.clone(),
        spiffe_id: e.spiffe_id.to_string(),
        parent_id: e.parent_id.to_string(),
        selectors: e.selectors.iter().map(selector_to_proto).collect(),
        x509_svid_ttl_seconds: seconds_u32(e.x509_ttl),
        jwt_svid_ttl_seconds: seconds_u32(e.jwt_ttl),
        dns_names: e.dns_names.clone(),
        admin: e.admin,
        federates_with: e.federates_with.iter().map(ToString::to_string).collect(),
        downstream: e.downstream,
        revision: e.revision,
        created_at: unix_seconds(e.created_at),
        hint: String::new(),
        owner: e.owner.clone(),
        tenant: e.tenant.clone(),
    }
}

/// Validates a wire entry against the CA's trust domain and turns it into
/// the fields of a new store entry. `id`, `revision`, `created_at` and
/// `tenant` are ignored (the caller decides whether they may be set; the
/// tenant is the one whose prefixes hold the ID).
pub fn new_entry_from_proto(p: &pb::Entry, td: &TrustDomain) -> Result<NewEntry, InvalidInput> {
    let spiffe_id = validate::workload_id("spiffe_id", &p.spiffe_id, td)?;
    let parent_id = validate::spiffe_id_in("parent_id", &p.parent_id, td)?;
    if spiffe_id == parent_id {
        return Err(InvalidInput::Field {
            field: "parent_id",
            reason: "must differ from spiffe_id; the parent is the agent (or node alias) that serves the entry",
        });
    }
    let selectors = validate::selectors(
        p.selectors
            .iter()
            .map(|s| (s.r#type.as_str(), s.value.as_str())),
    )?;
    let x509_ttl = validate::ttl(
        "x509_svid_ttl_seconds",
        p.x509_svid_ttl_seconds,
        validate::MIN_X509_TTL,
        validate::MAX_X509_TTL,
    )?;
    let jwt_ttl = validate::ttl(
        "jwt_svid_ttl_seconds",
        p.jwt_svid_ttl_seconds,
        validate::MIN_JWT_TTL,
        validate::MAX_JWT_TTL,
    )?;
    let dns_names = validate::dns_names(&p.dns_names)?;
    let federates_with = validate::federates_with(&p.federates_with, td)?;
    let owner = validate::owner("owner", &p.owner)?;
    if !p.hint.is_empty() {
        return Err(InvalidInput::Field {
            field: "hint",
            reason: "hints are not stored by this CA version; leave it empty",
        });
    }
    Ok(NewEntry {
        spiffe_id,
        parent_id,
        selectors,
        x509_ttl,
        jwt_ttl,
        dns_names,
        admin: p.admin,
        federates_with,
        downstream: p.downstream,
        owner,
        tenant: String::new(),
    })
}

/// A full replacement of an entry's fields as a store update.
pub fn entry_update(new: NewEntry) -> EntryUpdate {
    EntryUpdate {
        spiffe_id: Some(new.spiffe_id),
        parent_id: Some(new.parent_id),
        selectors: Some(new.selectors),
        x509_ttl: Some(new.x509_ttl),
        jwt_ttl: Some(new.jwt_ttl),
        dns_names: Some(new.dns_names),
        admin: Some(new.admin),
        federates_with: Some(new.federates_with),
        downstream: Some(new.downstream),
        owner: Some(new.owner),
    }
}

/// An agent on the wire.
pub fn agent_to_proto(a: &Agent) -> pb::Agent {
    pb::Agent {
        spiffe_id: a.spiffe_id.to_string(),
        attestation_type: a.attestation_type.clone(),
        serial: a.serial.clone(),
        expires_at: unix_seconds(a.expires_at),
        banned: a.banned,
        selectors: a.selectors.iter().map(selector_to_proto).collect(),
        created_at: unix_seconds(a.created_at),
        tenant: a.tenant.clone(),
    }
}

/// A tenant on the wire.
pub fn tenant_to_proto(t: &Tenant) -> pb::Tenant {
    pb::Tenant {
        name: t.name.clone(),
        spiffe_id_prefixes: t.spiffe_id_prefixes.clone(),
        k8s_namespaces: t.k8s_namespaces.clone(),
        allowed_parents: t.allowed_parents.clone(),
        federates_with: t.federates_with.iter().map(ToString::to_string).collect(),
        created_at: unix_seconds(t.created_at),
    }
}

/// A tenant off the wire: the trust domains parsed, its meaning not
/// checked yet (`crate::tenancy::check_tenant` does).
pub fn tenant_from_proto(p: &pb::Tenant) -> Result<Tenant, InvalidInput> {
    if p.federates_with.len() > crate::store::MAX_TENANT_PREFIXES {
        return Err(InvalidInput::TooMany {
            field: "federates_with",
            count: p.federates_with.len(),
            limit: crate::store::MAX_TENANT_PREFIXES,
        });
    }
    let federates_with = p
        .federates_with
        .iter()
        .map(|f| validate::trust_domain("federates_with", f))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Tenant {
        name: p.name.clone(),
        spiffe_id_prefixes: p.spiffe_id_prefixes.clone(),
        k8s_namespaces: p.k8s_namespaces.clone(),
        allowed_parents: p.allowed_parents.clone(),
        federates_with,
        created_at: UNIX_EPOCH,
    })
}

/// A role binding on the wire, with where it comes from (`store`,
/// `config`, `implicit`).
pub fn binding_to_proto(b: &RoleBinding, source: &str) -> pb::RoleBinding {
    pb::RoleBinding {
        subject: b.subject.clone(),
        role: b.role.as_str().to_owned(),
        tenant: b.tenant.clone(),
        source: source.to_owned(),
        created_at: unix_seconds(b.created_at),
    }
}

/// A trust bundle on the wire. `sequence` is the store's sequence number.
pub fn bundle_to_proto(b: &TrustBundle, sequence: i64) -> pb::Bundle {
    pb::Bundle {
        trust_domain: b.trust_domain.to_string(),
        x509_authorities: b.x509_authorities.iter().map(|c| c.to_vec()).collect(),
        jwt_authorities: b
            .jwt_authorities
            .iter()
            .map(|k| pb::JwtKey {
                key_id: k.key_id.clone(),
                public_key: k.public_key_der.clone(),
                expires_at: 0,
            })
            .collect(),
        sequence,
        refresh_hint_seconds: b
            .refresh_hint
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn wire_entry() -> pb::Entry {
        pb::Entry {
            spiffe_id: "spiffe://example.org/web".into(),
            parent_id: "spiffe://example.org/agent".into(),
            selectors: vec![pb::Selector {
                r#type: "unix".into(),
                value: "uid:1000".into(),
            }],
            dns_names: vec!["Web.Local".into()],
            federates_with: vec!["partner.org".into()],
            x509_svid_ttl_seconds: 3600,
            owner: "k8s/demo".into(),
            ..Default::default()
        }
    }

    #[test]
    fn entry_round_trips_through_the_store_types() {
        let td = TrustDomain::new("example.org").unwrap();
        let new = new_entry_from_proto(&wire_entry(), &td).unwrap();
        assert_eq!(new.dns_names, vec!["web.local"]);
        let stored = RegistrationEntry {
            id: "ab".into(),
            spiffe_id: new.spiffe_id.clone(),
            parent_id: new.parent_id.clone(),
            selectors: new.selectors.clone(),
            x509_ttl: new.x509_ttl,
            jwt_ttl: new.jwt_ttl,
            dns_names: new.dns_names.clone(),
            admin: false,
            federates_with: new.federates_with.clone(),
            downstream: false,
            owner: new.owner.clone(),
            tenant: String::new(),
            revision: 1,
            created_at: UNIX_EPOCH + Duration::from_secs(7),
            updated_at: UNIX_EPOCH + Duration::from_secs(7),
        };
        let wire = entry_to_proto(&stored);
        assert_eq!(wire.spiffe_id, "spiffe://example.org/web");
        assert_eq!(wire.x509_svid_ttl_seconds, 3600);
        assert_eq!(wire.federates_with, vec!["partner.org"]);
        assert_eq!(wire.created_at, 7);
        assert_eq!(wire.owner, "k8s/demo");
        assert_eq!(new_entry_from_proto(&wire, &td).unwrap(), new);
    }

    #[test]
    fn entry_with_own_id_as_parent_is_refused() {
        let td = TrustDomain::new("example.org").unwrap();
        let mut e = wire_entry();
        e.parent_id = e.spiffe_id.clone();
        assert!(new_entry_from_proto(&e, &td).is_err());
    }

    #[test]
    fn entry_with_a_bad_owner_is_refused() {
        let td = TrustDomain::new("example.org").unwrap();
        let mut e = wire_entry();
        e.owner = "k8s:demo".into();
        let err = new_entry_from_proto(&e, &td).unwrap_err();
        assert!(
            matches!(err, InvalidInput::BadOwner { field: "owner", .. }),
            "{err:?}"
        );
    }

    #[test]
    fn unix_seconds_handles_both_sides_of_the_epoch() {
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_secs(5)), 5);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(5)), -5);
    }
}
