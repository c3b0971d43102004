//! The roles a caller holds, and the checks every admin RPC makes.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use meshid_identity::SpiffeId;
use tonic::Status;

use super::{Caller, KubeAuthenticator, Role, RoleBinding, denial};
use crate::store::{EntryFilter, Page, Store};

/// Most entries with the caller's SPIFFE ID looked at for the `admin` flag.
const MAX_ADMIN_ENTRIES: u32 = 100;

/// Where a role a caller holds comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A binding made with `meshid rbac bind`.
    Store,
    /// A `[[rbac.bindings]]` of the config (read-only).
    Config,
    /// Implied: uid 0 or the CA's uid on the socket, `admin_ids`, or an
    /// entry with `admin = true`.
    Implicit,
}

impl Source {
    /// `store`, `config` or `implicit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Store => "store",
            Self::Config => "config",
            Self::Implicit => "implicit",
        }
    }
}

/// One role a caller holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The binding (implicit ones are made up, stamped with the epoch).
    pub binding: RoleBinding,
    /// Where it comes from.
    pub source: Source,
}

/// What [`Authorizer::new`] is built from.
#[derive(Debug, Clone)]
pub struct AuthorizerParts {
    /// Where bindings (and entries, for their `admin` flag) are read.
    pub store: Arc<dyn Store>,
    /// `[[rbac.bindings]]` (checked).
    pub config: Vec<RoleBinding>,
    /// `admin_ids`: cluster-admins over mTLS.
    pub admin_ids: Vec<SpiffeId>,
    /// Socket peers that are cluster-admins: uid 0 and the CA's own uid.
    pub socket_admins: Vec<u32>,
    /// Reviews bearer tokens and asks Kubernetes RBAC (`[rbac.kubernetes]`).
    pub kube: Option<Arc<dyn KubeAuthenticator>>,
    /// How long the stored bindings are cached (`[ha] refresh_interval`).
    pub refresh: Duration,
}

/// The stored bindings as last read, and when.
type Cached = Option<(Instant, Arc<Vec<RoleBinding>>)>;

/// Decides what callers may do. Cheap to clone; clones share the cache.
#[derive(Debug, Clone)]
pub struct Authorizer {
    parts: Arc<AuthorizerParts>,
    cache: Arc<RwLock<Cached>>,
}

// === impl Authorizer ===

impl Authorizer {
    /// An authorizer over `parts`.
    pub fn new(parts: AuthorizerParts) -> Self {
        Self {
            parts: Arc::new(parts),
            cache: Arc::new(RwLock::new(None)),
        }
    }

    /// The reviewer of bearer tokens, if configured.
    pub fn kube(&self) -> Option<&dyn KubeAuthenticator> {
        self.parts.kube.as_deref()
    }

    /// The bindings of the config, as given.
    pub fn config_bindings(&self) -> &[RoleBinding] {
        &self.parts.config
    }

    /// Forgets the cached stored bindings (after a bind or unbind), so the
    /// next call reads them again.
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cache.write() {
            *c = None;
        }
    }

    /// Every binding, stored (cached for the refresh interval) and
    /// configured, with its source.
    pub async fn bindings(&self) -> Result<Vec<Held>, Status> {
        let stored = self.stored().await?;
        Ok(stored
            .iter()
            .map(|b| Held {
                binding: b.clone(),
                source: Source::Store,
            })
            .chain(self.parts.config.iter().map(|b| Held {
                binding: b.clone(),
                source: Source::Config,
            }))
            .collect())
    }

    async fn stored(&self) -> Result<Arc<Vec<RoleBinding>>, Status> {
        if let Ok(c) = self.cache.read()
            && let Some((at, list)) = c.as_ref()
            && at.elapsed() < self.parts.refresh
        {
            return Ok(Arc::clone(list));
        }
        let list = Arc::new(
            self.parts
                .store
                .list_bindings()
                .await
                .map_err(|e| crate::admin::store_status(&e))?,
        );
        if let Ok(mut c) = self.cache.write() {
            *c = Some((Instant::now(), Arc::clone(&list)));
        }
        Ok(list)
    }

    /// The roles `caller` holds.
    pub async fn grants(&self, caller: Caller) -> Result<Grants, Status> {
        let subjects = caller.subjects();
        let mut held: Vec<Held> = self
            .bindings()
            .await?
            .into_iter()
            .filter(|h| subjects.contains(&h.binding.subject))
            .collect();
        let implicit = |subject: String, role: Role, tenant: String| Held {
            binding: RoleBinding {
                subject,
                role,
                tenant,
                created_at: std::time::UNIX_EPOCH,
            },
            source: Source::Implicit,
        };
        if let Some((uid, _)) = caller.peer
            && self.parts.socket_admins.contains(&uid)
        {
            held.push(implicit(
                format!("uid:{uid}"),
                Role::ClusterAdmin,
                String::new(),
            ));
        }
        if let Some(id) = &caller.spiffe_id {
            if self.parts.admin_ids.contains(id) {
                held.push(implicit(id.to_string(), Role::ClusterAdmin, String::new()));
            }
            let filter = EntryFilter {
                spiffe_id: Some(id.clone()),
                ..EntryFilter::default()
            };
            let (entries, _) = self
                .parts
                .store
                .list_entries(&filter, &Page::first(MAX_ADMIN_ENTRIES))
                .await
                .map_err(|e| crate::admin::store_status(&e))?;
            for e in entries.iter().filter(|e| e.admin) {
                let role = if e.tenant.is_empty() {
                    Role::ClusterAdmin
                } else {
                    Role::Admin
                };
                held.push(implicit(id.to_string(), role, e.tenant.clone()));
            }
        }
        Ok(Grants {
            caller,
            held,
            kube: self.parts.kube.clone(),
            store: Arc::clone(&self.parts.store),
        })
    }
}

/// Which tenants' objects a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant's and the platform's (cluster-admin).
    All,
    /// Only these tenants' (possibly none).
    Tenants(Vec<String>),
}

impl Scope {
    /// Whether objects of `tenant` are in scope.
    pub fn includes(&self, tenant: &str) -> bool {
        match self {
            Self::All => true,
            Self::Tenants(list) => list.iter().any(|t| t == tenant),
        }
    }

    /// The tenant list for a store filter (`None`: all).
    pub fn filter(&self) -> Option<Vec<String>> {
        match self {
            Self::All => None,
            Self::Tenants(list) => Some(list.clone()),
        }
    }
}

/// The roles one caller holds, for the checks of one request.
#[derive(Debug, Clone)]
pub struct Grants {
    caller: Caller,
    held: Vec<Held>,
    kube: Option<Arc<dyn KubeAuthenticator>>,
    store: Arc<dyn Store>,
}

// === impl Grants ===

impl Grants {
    /// Who is calling.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The roles held through bindings and implicitly.
    pub fn held(&self) -> &[Held] {
        &self.held
    }

    fn bound(&self, role: Role, tenant: &str) -> bool {
        self.held.iter().any(|h| {
            h.binding.role == Role::ClusterAdmin
                || (h.binding.role >= role && !tenant.is_empty() && h.binding.tenant == tenant)
        })
    }

    /// Whether Kubernetes RBAC grants `role` on `tenant` (or cluster-admin).
    async fn kube_allows(&self, role: Role, tenant: &str) -> Result<bool, Status> {
        let (Some(kube), Some(user)) = (&self.kube, &self.caller.kube) else {
            return Ok(false);
        };
        if !tenant.is_empty()
            && role != Role::ClusterAdmin
            && kube.allowed(user, role, tenant).await?
        {
            return Ok(true);
        }
        kube.allowed(user, Role::ClusterAdmin, "").await
    }

    /// Whether the caller is a cluster-admin.
    pub async fn is_cluster_admin(&self) -> Result<bool, Status> {
        Ok(self.bound(Role::ClusterAdmin, "") || self.kube_allows(Role::ClusterAdmin, "").await?)
    }

    /// `Ok` when the caller holds `role` on `tenant` (`""`: the platform,
    /// cluster-admin only), else the denial naming the missing role and
    /// `action`.
    pub async fn require(&self, role: Role, tenant: &str, action: &str) -> Result<(), Status> {
        if self.bound(role, tenant) || self.kube_allows(role, tenant).await? {
            return Ok(());
        }
        Err(denial(self.caller.actor(), role, tenant, action))
    }

    /// The tenants on which the caller holds at least `role`.
    pub async fn scope(&self, role: Role) -> Result<Scope, Status> {
        if self.is_cluster_admin().await? {
            return Ok(Scope::All);
        }
        let mut tenants: Vec<String> = self
            .held
            .iter()
            .filter(|h| h.binding.role >= role && !h.binding.tenant.is_empty())
            .map(|h| h.binding.tenant.clone())
            .collect();
        if let (Some(kube), Some(user)) = (&self.kube, &self.caller.kube) {
            // Kubernetes RBAC cannot be listed: ask about each tenant.
            let all = self
                .store
                .list_tenants()
                .await
                .map_err(|e| crate::admin::store_status(&e))?;
            for t in all {
                if !tenants.contains(&t.name) && kube.allowed(user, role, &t.name).await? {
                    tenants.push(t.name);
                }
            }
        }
        tenants.sort();
        tenants.dedup();
        Ok(Scope::Tenants(tenants))
    }

    /// `Ok` when the caller holds any role anywhere, else the denial for
    /// `action`.
    pub async fn require_any(&self, action: &str) -> Result<(), Status> {
        if !self.held.is_empty() {
            return Ok(());
        }
        match self.scope(Role::Viewer).await? {
            Scope::All => Ok(()),
            Scope::Tenants(t) if !t.is_empty() => Ok(()),
            Scope::Tenants(_) => Err(Status::permission_denied(format!(
                "{actor} holds no role on any tenant ({action}); an admin of a tenant can grant \
                 one: `meshid rbac bind --subject {actor} --role viewer --tenant <tenant>`",
                actor = self.caller.actor()
            ))),
        }
    }
}
