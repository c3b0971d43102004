//! Decoding rows into model values. Every stored value is parsed again on the way out;
//! a row that does not parse is [`StoreError::Corrupt`], never returned.

use meshid_identity::TrustDomain;
use sqlx::Row;

use super::Db;
use crate::store::StoreError;
use crate::store::audit::{AuditCheckpoint, AuditEvent, AuditRecord};
use crate::store::codec;
use crate::store::model::{
    Agent, IssuanceRecord, JoinToken, KeyKind, KeySlot, Lease, RegistrationEntry, SlotState,
    StoredBundle,
};
use crate::store::tenancy::{RoleBinding, Tenant, UnknownRole};

/// A row of this backend.
pub(super) type DbRow = <Db as sqlx::Database>::Row;

/// The entry table, as named in [`StoreError::Corrupt`].
pub(super) const ENTRIES: &str = "registration_entries";

/// An entry without its selectors (they live in `entry_selectors`).
pub(super) fn entry(row: &DbRow) -> Result<RegistrationEntry, StoreError> {
    let id: String = row.try_get("id")?;
    let k = id.as_str();
    Ok(RegistrationEntry {
        spiffe_id: codec::spiffe_id(&row.try_get::<String, _>("spiffe_id")?, ENTRIES, k)?,
        parent_id: codec::spiffe_id(&row.try_get::<String, _>("parent_id")?, ENTRIES, k)?,
        selectors: Vec::new(),
        x509_ttl: codec::from_secs(row.try_get("x509_ttl_secs")?, ENTRIES, k)?,
        jwt_ttl: codec::from_secs(row.try_get("jwt_ttl_secs")?, ENTRIES, k)?,
        dns_names: codec::decode_dns_names(&row.try_get::<String, _>("dns_names")?, k)?,
        admin: row.try_get("admin")?,
        federates_with: codec::decode_trust_domains(
            &row.try_get::<String, _>("federates_with")?,
            k,
        )?,
        downstream: row.try_get("downstream")?,
        owner: codec::owner(row.try_get("owner")?, k)?,
        tenant: codec::tenant(row.try_get("tenant")?, ENTRIES, k)?,
        revision: row.try_get("revision")?,
        created_at: codec::from_ms(row.try_get("created_at_ms")?, ENTRIES, k)?,
        updated_at: codec::from_ms(row.try_get("updated_at_ms")?, ENTRIES, k)?,
        id,
    })
}

/// An agent without its selectors (they live in `agent_selectors`).
pub(super) fn agent(row: &DbRow) -> Result<Agent, StoreError> {
    let id: String = row.try_get("spiffe_id")?;
    let k = id.as_str();
    Ok(Agent {
        spiffe_id: codec::spiffe_id(k, "agents", k)?,
        attestation_type: row.try_get("attestation_type")?,
        serial: row.try_get("serial")?,
        previous_serial: row.try_get("previous_serial")?,
        expires_at: codec::from_ms(row.try_get("expires_at_ms")?, "agents", k)?,
        banned: row.try_get("banned")?,
        selectors: Vec::new(),
        tenant: codec::tenant(row.try_get("tenant")?, "agents", k)?,
        created_at: codec::from_ms(row.try_get("created_at_ms")?, "agents", k)?,
        updated_at: codec::from_ms(row.try_get("updated_at_ms")?, "agents", k)?,
    })
}

/// A join token.
pub(super) fn token(row: &DbRow) -> Result<JoinToken, StoreError> {
    let id: String = row.try_get("id")?;
    let k = id.as_str();
    let alias: Option<String> = row.try_get("spiffe_id")?;
    let used: Option<i64> = row.try_get("used_at_ms")?;
    Ok(JoinToken {
        hash: row.try_get("hash")?,
        spiffe_id: alias
            .map(|a| codec::spiffe_id(&a, "join_tokens", k))
            .transpose()?,
        expires_at: codec::from_ms(row.try_get("expires_at_ms")?, "join_tokens", k)?,
        used_at: used
            .map(|u| codec::from_ms(u, "join_tokens", k))
            .transpose()?,
        tenant: codec::tenant(row.try_get("tenant")?, "join_tokens", k)?,
        id,
    })
}

/// An issuance record.
pub(super) fn issuance(row: &DbRow) -> Result<IssuanceRecord, StoreError> {
    let serial: String = row.try_get("serial")?;
    let k = serial.as_str();
    let t = "issuances";
    let agent: Option<String> = row.try_get("agent_id")?;
    Ok(IssuanceRecord {
        spiffe_id: codec::spiffe_id(&row.try_get::<String, _>("spiffe_id")?, t, k)?,
        agent_id: agent.map(|a| codec::spiffe_id(&a, t, k)).transpose()?,
        entry_id: row.try_get("entry_id")?,
        not_after: codec::from_ms(row.try_get("not_after_ms")?, t, k)?,
        issued_at: codec::from_ms(row.try_get("issued_at_ms")?, t, k)?,
        ca_key_id: row.try_get("ca_key_id")?,
        tenant: codec::tenant(row.try_get("tenant")?, t, k)?,
        serial,
    })
}

/// A trust bundle.
pub(super) fn bundle(row: &DbRow) -> Result<StoredBundle, StoreError> {
    let td: String = row.try_get("trust_domain")?;
    Ok(StoredBundle {
        trust_domain: TrustDomain::new(&td)
            .map_err(|e| codec::corrupt("bundles", &td, format!("trust domain: {e}")))?,
        spiffe_json: row.try_get("spiffe_json")?,
        sequence: row.try_get("sequence")?,
        updated_at: codec::from_ms(row.try_get("updated_at_ms")?, "bundles", &td)?,
    })
}

/// The key journal table, as named in [`StoreError::Corrupt`].
const KEY_SLOTS: &str = "ca_key_slots";

/// A CA key slot; an unknown kind or state, or a generation out of range,
/// is corrupt.
pub(super) fn key_slot(row: &DbRow) -> Result<KeySlot, StoreError> {
    let id: String = row.try_get("id")?;
    let k = id.as_str();
    let bad = |what: &str, v: &str| {
        codec::corrupt(
            KEY_SLOTS,
            k,
            format!("{what} {:?}", v.chars().take(40).collect::<String>()),
        )
    };
    let kind: String = row.try_get("kind")?;
    let kind = KeyKind::parse(&kind).ok_or_else(|| bad("kind is not x509 or jwt:", &kind))?;
    let state: String = row.try_get("state")?;
    let state = SlotState::parse(&state)
        .ok_or_else(|| bad("state is not prepared, active or old:", &state))?;
    let generation: i64 = row.try_get("generation")?;
    let generation = u32::try_from(generation)
        .ok()
        .filter(|g| *g >= 1)
        .ok_or_else(|| bad("generation is out of range:", &generation.to_string()))?;
    let time =
        |col: &str| -> Result<_, StoreError> { codec::from_ms(row.try_get(col)?, KEY_SLOTS, k) };
    let opt_time = |col: &str| -> Result<_, StoreError> {
        row.try_get::<Option<i64>, _>(col)?
            .map(|ms| codec::from_ms(ms, KEY_SLOTS, k))
            .transpose()
    };
    Ok(KeySlot {
        replica: row.try_get("replica")?,
        kind,
        generation,
        state,
        key_id: row.try_get("key_id")?,
        key_slot: row.try_get("key_slot")?,
        key_ref: row.try_get("key_ref")?,
        public_pem: row.try_get("public_pem")?,
        roots_pem: row.try_get("roots_pem")?,
        not_before: time("not_before_ms")?,
        not_after: time("not_after_ms")?,
        prepared_at: time("prepared_at_ms")?,
        activated_at: opt_time("activated_at_ms")?,
        retired_at: opt_time("retired_at_ms")?,
        publish_until: opt_time("publish_until_ms")?,
        tainted: row.try_get("tainted")?,
        updated_at: time("updated_at_ms")?,
        id,
    })
}

/// A lease.
pub(super) fn lease(row: &DbRow) -> Result<Lease, StoreError> {
    let name: String = row.try_get("name")?;
    Ok(Lease {
        holder: row.try_get("holder")?,
        token: row.try_get("token")?,
        expires_at: codec::from_ms(row.try_get("expires_at_ms")?, "ca_leases", &name)?,
        name,
    })
}

/// The `n` column of a `COUNT(*) AS n` row.
pub(super) fn count(row: &DbRow) -> Result<u64, StoreError> {
    Ok(crate::store::sql::count(row.try_get("n")?))
}

/// A tenant.
pub(super) fn tenant(row: &DbRow) -> Result<Tenant, StoreError> {
    let name: String = row.try_get("name")?;
    let t = "tenants";
    let k = name.as_str();
    let list = |col: &str| -> Result<Vec<String>, StoreError> {
        codec::decode_strings(&row.try_get::<String, _>(col)?, t, k, col)
    };
    let federates_with = list("federates_with")?
        .iter()
        .map(|td| {
            TrustDomain::new(td)
                .map_err(|e| codec::corrupt(t, k, format!("trust domain {td:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let tenant = Tenant {
        spiffe_id_prefixes: list("spiffe_id_prefixes")?,
        k8s_namespaces: list("k8s_namespaces")?,
        allowed_parents: list("allowed_parents")?,
        federates_with,
        created_at: codec::from_ms(row.try_get("created_at_ms")?, t, k)?,
        name: name.clone(),
    };
    match tenant.problem() {
        None => Ok(tenant),
        Some(why) => Err(codec::corrupt(t, &name, why)),
    }
}

/// A role binding.
pub(super) fn binding(row: &DbRow) -> Result<RoleBinding, StoreError> {
    let subject: String = row.try_get("subject")?;
    let t = "role_bindings";
    let role: String = row.try_get("role")?;
    let b = RoleBinding {
        role: role
            .parse()
            .map_err(|e: UnknownRole| codec::corrupt(t, &subject, e.to_string()))?,
        tenant: row.try_get("tenant")?,
        created_at: codec::from_ms(row.try_get("created_at_ms")?, t, &subject)?,
        subject,
    };
    match b.problem() {
        None => Ok(b),
        Some(why) => Err(codec::corrupt(t, &b.subject, why)),
    }
}

/// The audit log table, as named in [`StoreError::Corrupt`].
const AUDIT: &str = "audit_log";

/// An audit record, as stored (its hashes are not checked here: that is
/// what verifying the chain does).
pub(super) fn audit_record(row: &DbRow) -> Result<AuditRecord, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let k = seq.to_string();
    Ok(AuditRecord {
        seq,
        at: codec::from_ms(row.try_get("at_ms")?, AUDIT, &k)?,
        event: AuditEvent {
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            tenant: row.try_get("tenant")?,
            target: row.try_get("target")?,
            before: row.try_get("before_json")?,
            after: row.try_get("after_json")?,
            result: row.try_get("result")?,
        },
        prev_hash: codec::hash32(&row.try_get::<Vec<u8>, _>("prev_hash")?, AUDIT, &k)?,
        hash: codec::hash32(&row.try_get::<Vec<u8>, _>("hash")?, AUDIT, &k)?,
    })
}

/// An audit checkpoint.
pub(super) fn audit_checkpoint(row: &DbRow) -> Result<AuditCheckpoint, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let k = seq.to_string();
    let t = "audit_checkpoints";
    Ok(AuditCheckpoint {
        seq,
        hash: codec::hash32(&row.try_get::<Vec<u8>, _>("hash")?, t, &k)?,
        at: codec::from_ms(row.try_get("at_ms")?, t, &k)?,
        key_id: row.try_get("key_id")?,
        cert_chain_pem: row.try_get("cert_chain_pem")?,
        signature: row.try_get("signature")?,
    })
}
