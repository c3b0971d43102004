//! The admin API: what operators (the `meshid` CLI) call on the CA.
//!
//! [`AdminService`] implements `meshid.ca.v1.Admin` over a [`Store`]. It is
//! served on a local Unix socket ([`socket::bind`], [`socket::serve`]) and
//! over mTLS beside the node API. Every call first identifies its caller
//! and checks the role the call needs on the resource's tenant
//! ([`crate::rbac`]); every write goes through [`Store::audited`], so the
//! change and its audit record are stored together, and a denied or failed
//! write is recorded on its own.
//!
//! Every request is validated before anything is written: bad input gets
//! `InvalidArgument` with a message naming the field and the fix, and the
//! store is left untouched. Batch creation reports one result per item.
//!
//! One module per group of calls: `entries`, `agents` (join tokens too),
//! `bundles` (and the authority), `rotation` (key slots), `tenants`,
//! `bindings` (and `WhoAmI`), `audit`; `access` is the check-and-record
//! step they share.

mod access;
mod agents;
mod audit;
mod bindings;
mod bundles;
pub mod convert;
mod entries;
mod rotation;
pub mod socket;
mod status;
mod tenants;
pub mod validate;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_identity::TrustDomain;
use meshid_proto::ca::{self as pb, admin_server::Admin, admin_server::AdminServer};
use meshid_runtime::clock::SharedClock;
use tonic::{Request, Response, Status};

use crate::node::FederatedBundles;
use crate::rbac::{Authorizer, AuthorizerParts};
use crate::rotation::Engine;
use crate::store::{Page, Store};

pub(crate) use status::store as store_status;

/// Most entries one `CreateEntries` call may carry.
pub const MAX_BATCH: usize = 1000;
/// Page size when the caller asks for 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Longest page token accepted.
const MAX_PAGE_TOKEN_LEN: usize = 2048;

/// Server-side defaults for lifetimes the caller leaves at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminDefaults {
    /// X.509-SVID lifetime of entries that do not set one (reported only;
    /// the authority applies it at signing time).
    pub x509_ttl: Duration,
    /// JWT-SVID lifetime of entries that do not set one.
    pub jwt_ttl: Duration,
    /// Join-token lifetime when the request says 0.
    pub token_ttl: Duration,
}

impl Default for AdminDefaults {
    fn default() -> Self {
        Self {
            x509_ttl: Duration::from_secs(3600),
            jwt_ttl: Duration::from_secs(300),
            token_ttl: Duration::from_secs(600),
        }
    }
}

/// The `meshid.ca.v1.Admin` gRPC service.
#[derive(Clone)]
pub struct AdminService {
    store: Arc<dyn Store>,
    trust_domain: TrustDomain,
    defaults: AdminDefaults,
    authority_kind: String,
    clock: SharedClock,
    federated: Option<FederatedBundles>,
    engine: Option<Engine>,
    authorizer: Authorizer,
}

// === impl AdminService ===

impl AdminService {
    /// A service over `store` for the CA of `trust_domain`, reading the
    /// system clock. Its only cluster-admins are socket peers with uid 0
    /// or this process's uid; see [`AdminService::with_authorizer`].
    pub fn new(store: Arc<dyn Store>, trust_domain: TrustDomain, defaults: AdminDefaults) -> Self {
        let authorizer = Authorizer::new(AuthorizerParts {
            store: Arc::clone(&store),
            config: Vec::new(),
            admin_ids: Vec::new(),
            socket_admins: socket::default_admins(),
            kube: None,
            refresh: crate::config::DEFAULT_REFRESH_INTERVAL,
        });
        Self {
            store,
            trust_domain,
            defaults,
            authority_kind: String::new(),
            clock: meshid_runtime::clock::system(),
            federated: None,
            engine: None,
            authorizer,
        }
    }

    /// Decides who may do what with `authorizer` (config bindings,
    /// `admin_ids`, the socket's implicit cluster-admins, Kubernetes).
    pub fn with_authorizer(mut self, authorizer: Authorizer) -> Self {
        self.authorizer = authorizer;
        self
    }

    /// Serves the key rotation calls through `engine` (without one they
    /// answer `Unavailable`).
    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Uses `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Names the upstream authority kind reported by `GetAuthority`
    /// (`self-signed`, `disk`, `upstream`, `pkcs11`).
    pub fn with_authority_kind(mut self, kind: impl Into<String>) -> Self {
        self.authority_kind = kind.into();
        self
    }

    /// Invalidates `cache` (the node API's federated-bundle cache) after
    /// every bundle this service writes, so agents see it on their next sync.
    pub fn with_federated_bundles(mut self, cache: FederatedBundles) -> Self {
        self.federated = Some(cache);
        self
    }

    /// The authorizer (shared by clones of this service).
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// The tonic server wrapping this service, with meshid's message limits.
    pub fn into_server(self) -> AdminServer<Self> {
        AdminServer::new(self)
            .max_decoding_message_size(meshid_proto::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE)
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
    }
}

fn page(token: &str, size: u32) -> Result<Page, Status> {
    if token.len() > MAX_PAGE_TOKEN_LEN {
        return Err(Status::invalid_argument(
            "page_token is too long; pass back the next_page_token of the previous response",
        ));
    }
    let limit = if size == 0 { DEFAULT_PAGE_SIZE } else { size };
    Ok(if token.is_empty() {
        Page::first(limit)
    } else {
        Page::after(token, limit)
    })
}

fn next_token(next: Option<String>) -> String {
    next.unwrap_or_default()
}

impl fmt::Debug for AdminService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminService")
            .field("trust_domain", &self.trust_domain)
            .field("defaults", &self.defaults)
            .field("authority_kind", &self.authority_kind)
            .finish_non_exhaustive()
    }
}

/// Thin delegation: each call is identified and authorized, then handled,
/// in its module.
#[tonic::async_trait]
impl Admin for AdminService {
    #[tracing::instrument(skip_all, fields(count))]
    async fn create_entries(
        &self,
        request: Request<pb::CreateEntriesRequest>,
    ) -> Result<Response<pb::CreateEntriesResponse>, Status> {
        let grants = self.grants(&request).await?;
        let req = request.into_inner();
        tracing::Span::current().record("count", req.entries.len());
        self.create_entries(&grants, req).await.map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn update_entry(
        &self,
        request: Request<pb::UpdateEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let grants = self.grants(&request).await?;
        self.update_entry(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn delete_entry(
        &self,
        request: Request<pb::DeleteEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let grants = self.grants(&request).await?;
        self.delete_entry(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let grants = self.grants(&request).await?;
        self.get_entry(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn list_entries(
        &self,
        request: Request<pb::ListEntriesRequest>,
    ) -> Result<Response<pb::ListEntriesResponse>, Status> {
        let grants = self.grants(&request).await?;
        self.list_entries(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn create_join_token(
        &self,
        request: Request<pb::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::JoinToken>, Status> {
        let grants = self.grants(&request).await?;
        self.create_join_token(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let grants = self.grants(&request).await?;
        self.list_agents(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn get_agent(
        &self,
        request: Request<pb::AgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let grants = self.grants(&request).await?;
        self.get_agent(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn evict_agent(
        &self,
        request: Request<pb::AgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let grants = self.grants(&request).await?;
        self.evict_or_ban(&grants, request.into_inner(), false)
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn ban_agent(
        &self,
        request: Request<pb::AgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let grants = self.grants(&request).await?;
        self.evict_or_ban(&grants, request.into_inner(), true)
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn get_bundle(
        &self,
        request: Request<pb::GetBundleRequest>,
    ) -> Result<Response<pb::GetBundleResponse>, Status> {
        let grants = self.grants(&request).await?;
        grants.require_any("GetBundle").await?;
        self.get_bundle(request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn set_federated_bundle(
        &self,
        request: Request<pb::SetFederatedBundleRequest>,
    ) -> Result<Response<pb::Bundle>, Status> {
        let grants = self.grants(&request).await?;
        self.set_federated_bundle(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn get_authority(
        &self,
        request: Request<pb::GetAuthorityRequest>,
    ) -> Result<Response<pb::Authority>, Status> {
        let grants = self.grants(&request).await?;
        grants.require_any("GetAuthority").await?;
        self.get_authority().await.map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn list_key_slots(
        &self,
        request: Request<pb::ListKeySlotsRequest>,
    ) -> Result<Response<pb::ListKeySlotsResponse>, Status> {
        let grants = self.grants(&request).await?;
        grants.require_any("ListKeySlots").await?;
        self.list_key_slots().await.map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn prepare_key(
        &self,
        request: Request<pb::PrepareKeyRequest>,
    ) -> Result<Response<pb::KeySlot>, Status> {
        let grants = self.grants(&request).await?;
        self.prepare_key(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn activate_key(
        &self,
        request: Request<pb::ActivateKeyRequest>,
    ) -> Result<Response<pb::KeySlot>, Status> {
        let grants = self.grants(&request).await?;
        self.activate_key(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn taint_key(
        &self,
        request: Request<pb::TaintKeyRequest>,
    ) -> Result<Response<pb::KeySlot>, Status> {
        let grants = self.grants(&request).await?;
        self.taint_key(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_key(
        &self,
        request: Request<pb::RevokeKeyRequest>,
    ) -> Result<Response<pb::KeySlot>, Status> {
        let grants = self.grants(&request).await?;
        self.revoke_key(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let grants = self.grants(&request).await?;
        self.create_tenant(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let grants = self.grants(&request).await?;
        self.get_tenant(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let grants = self.grants(&request).await?;
        self.list_tenants(&grants).await.map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn delete_tenant(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let grants = self.grants(&request).await?;
        self.delete_tenant(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn bind(
        &self,
        request: Request<pb::BindRequest>,
    ) -> Result<Response<pb::RoleBinding>, Status> {
        let grants = self.grants(&request).await?;
        self.bind(&grants, request.into_inner().binding)
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn unbind(
        &self,
        request: Request<pb::UnbindRequest>,
    ) -> Result<Response<pb::RoleBinding>, Status> {
        let grants = self.grants(&request).await?;
        self.unbind(&grants, request.into_inner().binding)
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn list_bindings(
        &self,
        request: Request<pb::ListBindingsRequest>,
    ) -> Result<Response<pb::ListBindingsResponse>, Status> {
        let grants = self.grants(&request).await?;
        self.list_bindings(&grants, request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let grants = self.grants(&request).await?;
        Ok(Response::new(bindings::who_am_i(&grants)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let grants = self.grants(&request).await?;
        let req = request.into_inner();
        let tenants = if req.tenant.is_empty() {
            self.administered(&grants, "ListAudit").await?.filter()
        } else {
            grants
                .require(crate::rbac::Role::Admin, &req.tenant, "ListAudit")
                .await?;
            Some(vec![req.tenant.clone()])
        };
        audit::list(self.store.as_ref(), tenants.as_deref(), req)
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn verify_audit(
        &self,
        request: Request<pb::VerifyAuditRequest>,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        let grants = self.grants(&request).await?;
        grants
            .require(crate::rbac::Role::ClusterAdmin, "", "VerifyAudit")
            .await?;
        audit::verify(self.store.as_ref(), &self.trust_domain)
            .await
            .map(Response::new)
    }
}
