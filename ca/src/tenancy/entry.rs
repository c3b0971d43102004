//! What a tenant's registration entries and join tokens may name.

use meshid_identity::SpiffeId;

use super::{TenancyError, Tenant, holds, refuse, within};
use crate::store::NewEntry;

/// Checks `entry`, whose SPIFFE ID lies in `tenant`: its parent is within
/// the tenant (one of its prefixes or `allowed_parents`, or an agent of
/// the tenant: `parent_is_tenant_agent`), and it federates only with trust
/// domains the tenant may.
pub fn check_entry(
    tenant: &Tenant,
    entry: &NewEntry,
    parent_is_tenant_agent: bool,
) -> Result<(), TenancyError> {
    if !within(tenant, &entry.spiffe_id) {
        return Err(refuse(
            "spiffe_id",
            format!(
                "{} is outside tenant {} (its prefixes: {}); choose an ID under one of them",
                entry.spiffe_id,
                tenant.name,
                tenant.spiffe_id_prefixes.join(", ")
            ),
        ));
    }
    let parent_ok = within(tenant, &entry.parent_id)
        || tenant
            .allowed_parents
            .iter()
            .any(|p| holds(p, entry.parent_id.as_str()))
        || parent_is_tenant_agent;
    if !parent_ok {
        return Err(refuse(
            "parent_id",
            format!(
                "{} is outside tenant {}: a tenant's entry names one of its agents (join tokens \
                 created with --tenant {}), a node alias under its prefixes, or a parent in its \
                 allowed_parents ({}); ask a cluster-admin to add the parent to the tenant",
                entry.parent_id,
                tenant.name,
                tenant.name,
                if tenant.allowed_parents.is_empty() {
                    "none".to_owned()
                } else {
                    tenant.allowed_parents.join(", ")
                }
            ),
        ));
    }
    if let Some(td) = entry
        .federates_with
        .iter()
        .find(|td| !tenant.federates_with.contains(td))
    {
        return Err(refuse(
            "federates_with",
            format!(
                "tenant {} may not federate with {td} (its federates_with: {}); ask a \
                 cluster-admin to add it to the tenant",
                tenant.name,
                if tenant.federates_with.is_empty() {
                    "none".to_owned()
                } else {
                    tenant
                        .federates_with
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        ));
    }
    Ok(())
}

/// Checks a join token's node alias against the token's tenant: a tenant's
/// alias lies under its prefixes; a platform token's alias outside every
/// tenant (`tenant_of_alias` is the tenant holding it, if any).
pub fn check_alias(
    token_tenant: Option<&Tenant>,
    alias: &SpiffeId,
    tenant_of_alias: Option<&Tenant>,
) -> Result<(), TenancyError> {
    match (token_tenant, tenant_of_alias) {
        (Some(t), Some(a)) if t.name == a.name => Ok(()),
        (None, None) => Ok(()),
        (Some(t), _) => Err(refuse(
            "spiffe_id",
            format!(
                "node alias {alias} is outside tenant {} (its prefixes: {})",
                t.name,
                t.spiffe_id_prefixes.join(", ")
            ),
        )),
        (None, Some(a)) => Err(refuse(
            "spiffe_id",
            format!(
                "node alias {alias} is in tenant {}; create the token with --tenant {}",
                a.name, a.name
            ),
        )),
    }
}
