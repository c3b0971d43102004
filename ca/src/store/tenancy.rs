//! Tenants and role bindings (#16): who owns which part of the trust
//! domain, and who may do what in it.
//!
//! The store checks only shapes and bounds ([`tenant_name_problem`],
//! [`Tenant::problem`], [`RoleBinding::problem`]); what a tenant's
//! prefixes mean (overlap, trust domain) is checked by `crate::tenancy`
//! before a tenant reaches the store.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use meshid_identity::TrustDomain;

/// Most tenants a store holds; [`Store::list_tenants`](super::Store::list_tenants)
/// never returns more and creating one more is refused.
pub const MAX_TENANTS: usize = 1000;
/// Most items in each list field of a [`Tenant`].
pub const MAX_TENANT_PREFIXES: usize = 32;
/// Most role bindings a store holds.
pub const MAX_BINDINGS: usize = 10_000;
/// Longest string in a tenant's lists or a binding's subject, in bytes.
pub const MAX_TENANT_STRING: usize = 2048;

/// A named scope of the trust domain: the SPIFFE IDs under its prefixes,
/// its Kubernetes namespaces, and the parents its entries may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// `[a-z][a-z0-9-]{0,62}`; unique.
    pub name: String,
    /// `spiffe://<td>/<path>` prefixes of the tenant's SPIFFE IDs.
    pub spiffe_id_prefixes: Vec<String>,
    /// Kubernetes namespaces whose workloads belong to the tenant.
    pub k8s_namespaces: Vec<String>,
    /// Parent IDs outside the tenant its entries may name (shared node agents).
    pub allowed_parents: Vec<String>,
    /// Foreign trust domains the tenant's entries may federate with.
    pub federates_with: Vec<TrustDomain>,
    /// When it was created (stamped by the store).
    pub created_at: SystemTime,
}

impl Tenant {
    /// Why this tenant cannot be stored (a bad name, too many or too long
    /// list items); `None` when its shape is fine.
    pub fn problem(&self) -> Option<String> {
        if let Some(why) = tenant_name_problem(&self.name) {
            return Some(format!("tenant name {:?} {why}", clip(&self.name)));
        }
        let lists = [
            ("spiffe_id_prefixes", &self.spiffe_id_prefixes),
            ("k8s_namespaces", &self.k8s_namespaces),
            ("allowed_parents", &self.allowed_parents),
        ];
        for (what, list) in lists {
            if list.len() > MAX_TENANT_PREFIXES {
                return Some(format!(
                    "tenant {}: {} {what} given; the limit is {MAX_TENANT_PREFIXES}",
                    self.name,
                    list.len()
                ));
            }
            if let Some(bad) = list.iter().find(|s| string_problem(s).is_some()) {
                return Some(format!(
                    "tenant {}: {what} item {:?} must be 1-{MAX_TENANT_STRING} printable bytes",
                    self.name,
                    clip(bad)
                ));
            }
        }
        if self.federates_with.len() > MAX_TENANT_PREFIXES {
            return Some(format!(
                "tenant {}: {} federates_with given; the limit is {MAX_TENANT_PREFIXES}",
                self.name,
                self.federates_with.len()
            ));
        }
        None
    }
}

/// Why `name` is not a tenant name (`[a-z][a-z0-9-]{0,62}`); `None` when it is.
pub fn tenant_name_problem(name: &str) -> Option<&'static str> {
    let mut bytes = name.bytes();
    match bytes.next() {
        None => return Some("is empty"),
        Some(b) if !b.is_ascii_lowercase() => return Some("must start with a-z"),
        Some(_) => {}
    }
    if name.len() > 63 {
        return Some("is longer than 63 bytes");
    }
    if !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Some("may hold only a-z, 0-9 and '-' (e.g. payments)");
    }
    None
}

/// Why `s` is not a bounded list item or subject; `None` when it is.
pub(crate) fn string_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() || s.len() > MAX_TENANT_STRING || s.chars().any(char::is_control) {
        Some("must be 1-2048 printable bytes")
    } else {
        None
    }
}

/// At most 80 characters of `s`, for error messages.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// What a subject may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reads the tenant's entries, agents and tokens.
    Viewer,
    /// Also writes entries within the tenant's prefixes.
    Operator,
    /// Also tokens, agents, bundles, federation and bindings of the tenant.
    Admin,
    /// Everything, platform-wide (bound with no tenant).
    ClusterAdmin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 4] = [
        Role::Viewer,
        Role::Operator,
        Role::Admin,
        Role::ClusterAdmin,
    ];

    /// The name stored, configured and shown (`viewer`, …, `cluster-admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
            Self::ClusterAdmin => "cluster-admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; use viewer, operator, admin or cluster-admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(clip(s)))
    }
}

/// "`subject` has `role` on `tenant`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleBinding {
    /// `uid:<n>`, `gid:<n>`, a SPIFFE ID, `k8s-user:<name>` or `k8s-group:<name>`.
    pub subject: String,
    /// The role granted.
    pub role: Role,
    /// The tenant it is granted on; `""` exactly for [`Role::ClusterAdmin`].
    pub tenant: String,
    /// When it was bound (stamped by the store).
    pub created_at: SystemTime,
}

impl RoleBinding {
    /// Why this binding cannot be stored; `None` when its shape is fine.
    pub fn problem(&self) -> Option<String> {
        if let Some(why) = string_problem(&self.subject) {
            return Some(format!("binding subject {why}"));
        }
        match (self.role, self.tenant.as_str()) {
            (Role::ClusterAdmin, "") => None,
            (Role::ClusterAdmin, _) => {
                Some("a cluster-admin binding is platform-wide: give it no tenant".to_owned())
            }
            (role, "") => Some(format!("a {role} binding needs a tenant")),
            (_, t) => {
                tenant_name_problem(t).map(|why| format!("binding tenant {:?} {why}", clip(t)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Role, tenant_name_problem};

    #[test]
    fn tenant_names_are_short_lowercase_words() {
        for good in ["a", "payments", "team-1", &"a".repeat(63)] {
            assert_eq!(tenant_name_problem(good), None, "{good:?}");
        }
        for bad in ["", "1a", "-a", "Pay", "a_b", "a b", "é", &"a".repeat(64)] {
            assert!(tenant_name_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn roles_parse_by_name_and_order_by_power() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("Admin".parse::<Role>().is_err());
        assert!(Role::Viewer < Role::Operator);
        assert!(Role::Admin < Role::ClusterAdmin);
    }
}
