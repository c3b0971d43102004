//! Tenants: named scopes of one trust domain, each a set of SPIFFE ID path
//! prefixes, and the rules that keep a tenant's entries and join tokens
//! inside it.
//!
//! The store keeps tenants and checks only their shape (name syntax, list
//! lengths); what they mean is checked here, before anything is written:
//!
//! - [`check_tenant`]: a new tenant's prefixes are `spiffe://<own td>/<path>`
//!   without a trailing `/`, never at or under `/meshid`, and neither equal
//!   to nor nested in any prefix of another tenant (or of itself);
//! - [`tenant_of`]: the tenant whose prefix holds an ID (equal to it, or
//!   below it by whole segments); none for a platform ID;
//! - `entry` ([`check_entry`]): a tenant's entry names a parent within the
//!   tenant (its prefixes, its `allowed_parents`, or one of its agents) and
//!   federates only with the tenant's trust domains; [`check_alias`]: a join
//!   token's node alias lies in the token's tenant;
//! - `startup` ([`apply_config`]): the config's `[[tenants]]` created when
//!   missing, refused when they differ from the stored ones.

mod entry;
mod startup;

use meshid_identity::{SpiffeId, TrustDomain};

pub use crate::store::{MAX_TENANT_PREFIXES, MAX_TENANTS, Tenant};
pub use entry::{check_alias, check_entry};
pub use startup::{StartupError, apply_config};

/// Longest Kubernetes namespace name (a DNS label).
const MAX_NAMESPACE_LEN: usize = 63;

/// Why a tenant, or an entry or token of one, is refused: the field and
/// what to do. Maps to `InvalidArgument`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TenancyError {
    /// The request or config field.
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> TenancyError {
    TenancyError {
        field,
        reason: reason.into(),
    }
}

/// Whether `id` is `prefix` or lies below it by whole path segments.
pub fn holds(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether either prefix holds the other.
fn nested(a: &str, b: &str) -> bool {
    holds(a, b) || holds(b, a)
}

/// The tenant whose prefixes hold `id`; `None` for a platform ID. Tenants
/// never overlap, so at most one does.
pub fn tenant_of<'a>(tenants: &'a [Tenant], id: &SpiffeId) -> Option<&'a Tenant> {
    tenants.iter().find(|t| within(t, id))
}

/// Whether one of `tenant`'s prefixes holds `id`.
pub fn within(tenant: &Tenant, id: &SpiffeId) -> bool {
    tenant
        .spiffe_id_prefixes
        .iter()
        .any(|p| holds(p, id.as_str()))
}

/// Checks `tenant` as a new tenant of `td` beside `others` (the stored
/// tenants; one of the same name is skipped, the store refuses duplicates)
/// and normalizes it: prefixes and parents as parsed IDs, lists sorted and
/// de-duplicated.
pub fn check_tenant(
    mut tenant: Tenant,
    td: &TrustDomain,
    others: &[Tenant],
) -> Result<Tenant, TenancyError> {
    if let Some(reason) = crate::store::tenant_name_problem(&tenant.name) {
        return Err(refuse("name", format!("{:?} {reason}", echo(&tenant.name))));
    }
    for (field, len) in [
        ("spiffe_id_prefixes", tenant.spiffe_id_prefixes.len()),
        ("k8s_namespaces", tenant.k8s_namespaces.len()),
        ("allowed_parents", tenant.allowed_parents.len()),
        ("federates_with", tenant.federates_with.len()),
    ] {
        if len > MAX_TENANT_PREFIXES {
            return Err(refuse(
                field,
                format!("has {len} items; the limit is {MAX_TENANT_PREFIXES}"),
            ));
        }
    }
    if tenant.spiffe_id_prefixes.is_empty() {
        return Err(refuse(
            "spiffe_id_prefixes",
            format!(
                "is empty; a tenant needs at least one prefix such as spiffe://{td}/ns/{}",
                tenant.name
            ),
        ));
    }
    let mut prefixes = Vec::with_capacity(tenant.spiffe_id_prefixes.len());
    for raw in &tenant.spiffe_id_prefixes {
        prefixes.push(prefix(raw, td)?);
    }
    prefixes.sort();
    prefixes.dedup();
    for (i, a) in prefixes.iter().enumerate() {
        if let Some(b) = prefixes[i + 1..].iter().find(|b| nested(a, b)) {
            return Err(refuse(
                "spiffe_id_prefixes",
                format!("{a} and {b} overlap; keep only the shorter one"),
            ));
        }
    }
    for other in others.iter().filter(|o| o.name != tenant.name) {
        for p in &prefixes {
            if let Some(q) = other.spiffe_id_prefixes.iter().find(|q| nested(p, q)) {
                return Err(refuse(
                    "spiffe_id_prefixes",
                    format!(
                        "{p} overlaps {q} of tenant {}; tenants never share IDs, choose a \
                         prefix outside every other tenant's",
                        other.name
                    ),
                ));
            }
        }
    }
    let mut parents = Vec::with_capacity(tenant.allowed_parents.len());
    for raw in &tenant.allowed_parents {
        parents.push(allowed_parent(raw, td)?);
    }
    parents.sort();
    parents.dedup();
    for ns in &tenant.k8s_namespaces {
        if let Some(reason) = namespace_problem(ns) {
            return Err(refuse("k8s_namespaces", format!("{:?} {reason}", echo(ns))));
        }
    }
    tenant.k8s_namespaces.sort();
    tenant.k8s_namespaces.dedup();
    if let Some(own) = tenant.federates_with.iter().find(|f| *f == td) {
        return Err(refuse(
            "federates_with",
            format!("{own} is this CA's own trust domain; name foreign trust domains only"),
        ));
    }
    tenant.federates_with.sort();
    tenant.federates_with.dedup();
    tenant.spiffe_id_prefixes = prefixes;
    tenant.allowed_parents = parents;
    Ok(tenant)
}

/// One prefix: an ID of `td` with a path, outside `/meshid`, no trailing `/`.
fn prefix(raw: &str, td: &TrustDomain) -> Result<String, TenancyError> {
    let field = "spiffe_id_prefixes";
    if raw.ends_with('/') {
        return Err(refuse(
            field,
            format!(
                "{:?} ends with '/'; write it without, e.g. {}",
                echo(raw),
                echo(raw.trim_end_matches('/'))
            ),
        ));
    }
    let id = SpiffeId::parse(raw)
        .map_err(|e| refuse(field, format!("{:?} is not a SPIFFE ID: {e}", echo(raw))))?;
    if !id.is_member_of(td) {
        return Err(refuse(
            field,
            format!("{id} is not in this CA's trust domain {td}; use spiffe://{td}/..."),
        ));
    }
    if id.path().is_empty() {
        return Err(refuse(
            field,
            format!("{id} is the whole trust domain; give a path such as {id}/ns/team"),
        ));
    }
    if id.is_reserved() {
        return Err(refuse(
            field,
            format!(
                "{id} is in the space meshid reserves for the CA and agents ({}); choose a \
                 path outside it",
                meshid_identity::id::RESERVED_PATH
            ),
        ));
    }
    Ok(id.as_str().to_owned())
}

/// One allowed parent (or prefix of parents): any ID of `td`, agents'
/// reserved IDs included.
fn allowed_parent(raw: &str, td: &TrustDomain) -> Result<String, TenancyError> {
    let field = "allowed_parents";
    let id = SpiffeId::parse(raw.trim_end_matches('/'))
        .map_err(|e| refuse(field, format!("{:?} is not a SPIFFE ID: {e}", echo(raw))))?;
    if !id.is_member_of(td) {
        return Err(refuse(
            field,
            format!("{id} is not in this CA's trust domain {td}"),
        ));
    }
    if id.path().is_empty() {
        return Err(refuse(
            field,
            format!("{id} would allow every parent; name the agents, e.g. {id}/meshid/agent/..."),
        ));
    }
    Ok(id.as_str().to_owned())
}

/// Why `ns` is not a Kubernetes namespace name (a DNS label).
fn namespace_problem(ns: &str) -> Option<&'static str> {
    if ns.is_empty() || ns.len() > MAX_NAMESPACE_LEN {
        return Some("must be 1-63 characters");
    }
    let ok = ns
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok || ns.starts_with('-') || ns.ends_with('-') {
        return Some("is not a namespace name (a-z, 0-9 and '-', not at either end)");
    }
    None
}

/// Truncates hostile input before echoing it in an error.
fn echo(s: &str) -> String {
    s.chars().take(120).collect()
}

/// The differences between a tenant as configured and as stored, for the
/// start-up error (empty when they agree; `created_at` is ignored).
pub fn differences(configured: &Tenant, stored: &Tenant) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, a: Vec<String>, b: Vec<String>| {
        if a != b {
            out.push(format!(
                "{name}: config [{}], stored [{}]",
                a.join(", "),
                b.join(", ")
            ));
        }
    };
    field(
        "spiffe_id_prefixes",
        configured.spiffe_id_prefixes.clone(),
        stored.spiffe_id_prefixes.clone(),
    );
    field(
        "k8s_namespaces",
        configured.k8s_namespaces.clone(),
        stored.k8s_namespaces.clone(),
    );
    field(
        "allowed_parents",
        configured.allowed_parents.clone(),
        stored.allowed_parents.clone(),
    );
    let tds = |t: &Tenant| t.federates_with.iter().map(ToString::to_string).collect();
    field("federates_with", tds(configured), tds(stored));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
