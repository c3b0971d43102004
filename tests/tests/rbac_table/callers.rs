//! Who calls, what they hold, and what each kind of RPC requires of them.

use super::world::Col;

/// The roles, weakest first (each includes those before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
    ClusterAdmin,
}

impl Role {
    /// As the CA spells it in bindings and denials.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
            Self::ClusterAdmin => "cluster-admin",
        }
    }
}

/// How a caller reaches the admin API.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    /// The real CLI on the admin socket under `setpriv` as this uid.
    Uid(u32),
    /// A tonic client on the node port presenting an SVID for this path.
    Svid(&'static str),
}

/// One caller of the table.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub name: &'static str,
    pub via: Via,
    /// Roles on tenants.
    pub grants: &'static [(&'static str, Role)],
    pub cluster_admin: bool,
}

impl Caller {
    /// The strongest role held on `tenant` (`""`: the platform, which only
    /// cluster-admin reaches).
    pub fn role_on(&self, tenant: &str) -> Option<Role> {
        if self.cluster_admin {
            return Some(Role::ClusterAdmin);
        }
        self.grants
            .iter()
            .filter(|(t, _)| !tenant.is_empty() && *t == tenant)
            .map(|(_, r)| *r)
            .max()
    }

    /// Holds `role` (or more) on `tenant`.
    pub fn has(&self, role: Role, tenant: &str) -> bool {
        self.role_on(tenant).is_some_and(|r| r >= role)
    }

    /// Holds `role` (or more) on some tenant.
    pub fn anywhere(&self, role: Role) -> bool {
        self.cluster_admin || self.grants.iter().any(|(_, r)| *r >= role)
    }
}

/// The socket callers: uids bound in the CA's config.
pub const SOCKET: [Caller; 5] = [
    Caller {
        name: "uid:2001 viewer of a",
        via: Via::Uid(2001),
        grants: &[("a", Role::Viewer)],
        cluster_admin: false,
    },
    Caller {
        name: "uid:2002 operator of a",
        via: Via::Uid(2002),
        grants: &[("a", Role::Operator)],
        cluster_admin: false,
    },
    Caller {
        name: "uid:2003 admin of a",
        via: Via::Uid(2003),
        grants: &[("a", Role::Admin)],
        cluster_admin: false,
    },
    Caller {
        name: "uid:2004 cluster-admin",
        via: Via::Uid(2004),
        grants: &[],
        cluster_admin: true,
    },
    Caller {
        name: "uid:2005 no binding",
        via: Via::Uid(2005),
        grants: &[],
        cluster_admin: false,
    },
];

/// The mTLS callers: SVIDs of tenants a and b and of the platform.
pub const MTLS: [Caller; 5] = [
    Caller {
        name: "ns/a/viewer (bound viewer of a)",
        via: Via::Svid("ns/a/viewer"),
        grants: &[("a", Role::Viewer)],
        cluster_admin: false,
    },
    Caller {
        name: "ns/a/admin (bound admin of a)",
        via: Via::Svid("ns/a/admin"),
        grants: &[("a", Role::Admin)],
        cluster_admin: false,
    },
    Caller {
        name: "ns/b/tool (entry admin = true: admin of b)",
        via: Via::Svid("ns/b/tool"),
        grants: &[("b", Role::Admin)],
        cluster_admin: false,
    },
    Caller {
        name: "ops/root (bound cluster-admin)",
        via: Via::Svid("ops/root"),
        grants: &[],
        cluster_admin: true,
    },
    Caller {
        name: "ns/b/nobody (no binding)",
        via: Via::Svid("ns/b/nobody"),
        grants: &[],
        cluster_admin: false,
    },
];

/// What an RPC requires.
#[derive(Debug, Clone, Copy)]
pub enum Need {
    /// This role on the resource's tenant (the column).
    On(Role),
    /// A listing: allowed with this role on some tenant; the column's
    /// resource is listed exactly when the caller holds it on its tenant.
    Listed(Role),
    /// Any role on any tenant.
    Any,
    /// Nothing: every caller.
    Anyone,
}

/// What a cell should come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Served; for a listing, whether the column's resource is in it.
    Allowed { listed: Option<bool> },
    /// PermissionDenied naming one of these roles.
    Denied(Vec<Role>),
    /// PermissionDenied saying the caller holds no role at all.
    NoRole,
}

/// The expectation for `caller` calling an RPC needing `need` on the
/// resource in `col` (`None`: an RPC without one). `read_first`: the CLI
/// reads the resource (viewer) before it writes.
pub fn expect(caller: &Caller, need: Need, col: Option<Col>, read_first: bool) -> Expect {
    let tenant = col.map_or("", Col::tenant);
    match need {
        Need::On(role) => {
            if caller.has(role, tenant) {
                Expect::Allowed { listed: None }
            } else if read_first && !caller.has(Role::Viewer, tenant) {
                Expect::Denied(platform_or(Role::Viewer, tenant))
            } else {
                Expect::Denied(platform_or(role, tenant))
            }
        }
        Need::Listed(role) => {
            if caller.anywhere(role) {
                Expect::Allowed {
                    listed: Some(caller.has(role, tenant)),
                }
            } else {
                Expect::Denied(vec![role])
            }
        }
        Need::Any => {
            if caller.anywhere(Role::Viewer) {
                Expect::Allowed { listed: None }
            } else {
                Expect::NoRole
            }
        }
        Need::Anyone => Expect::Allowed { listed: None },
    }
}

/// On the platform (no tenant) only cluster-admin reaches anything, so a
/// denial there may name either the RPC's role or cluster-admin.
fn platform_or(role: Role, tenant: &str) -> Vec<Role> {
    if tenant.is_empty() && role != Role::ClusterAdmin {
        vec![role, Role::ClusterAdmin]
    } else {
        vec![role]
    }
}
