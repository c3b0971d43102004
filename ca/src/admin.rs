//! The admin API: what operators (the `meshid` CLI) call on the CA.
//!
//! [`AdminService`] implements `meshid.ca.v1.Admin` over a [`Store`]. It is
//! served on a local Unix socket ([`socket::bind`], [`socket::serve`]);
//! whoever can open that socket is an administrator.
//!
//! Every request is validated before anything is written: bad input gets
//! `InvalidArgument` with a message naming the field and the fix, and the
//! store is left untouched. Batch creation reports one result per item.

pub mod convert;
mod rotation;
pub mod socket;
mod status;
pub mod validate;

use std::fmt;
use std::sync::Arc;

use meshid_runtime::clock::SharedClock;
use std::time::{Duration, SystemTime};

use meshid_identity::{SpiffeId, TrustBundle, TrustDomain};
use meshid_proto::ca::{self as pb, admin_server::Admin, admin_server::AdminServer};
use tonic::{Request, Response, Status};

use crate::node::FederatedBundles;
use crate::rotation::Engine;
use crate::store::{EntryFilter, KeyKind, Page, SlotState, Store, StoredBundle};
use convert::{agent_to_proto, bundle_to_proto, entry_to_proto, unix_seconds};
use validate::InvalidInput;

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
}

// === impl AdminService ===

impl AdminService {
    /// A service over `store` for the CA of `trust_domain`, reading the
    /// system clock.
    pub fn new(store: Arc<dyn Store>, trust_domain: TrustDomain, defaults: AdminDefaults) -> Self {
        Self {
            store,
            trust_domain,
            defaults,
            authority_kind: String::new(),
            clock: meshid_runtime::clock::system(),
            federated: None,
            engine: None,
        }
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

    /// The tonic server wrapping this service, with meshid's message limits.
    pub fn into_server(self) -> AdminServer<Self> {
        AdminServer::new(self)
            .max_decoding_message_size(meshid_proto::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE)
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    async fn create_one(&self, entry: &pb::Entry) -> Result<pb::Entry, Status> {
        if !entry.id.is_empty() {
            return Err(status::invalid(&InvalidInput::Field {
                field: "id",
                reason: "is assigned by the CA; leave it empty when creating",
            }));
        }
        let new = convert::new_entry_from_proto(entry, &self.trust_domain)
            .map_err(|e| status::invalid(&e))?;
        let stored = self
            .store
            .create_entry(new)
            .await
            .map_err(|e| status::store(&e))?;
        tracing::info!(entry_id = %stored.id, spiffe_id = %stored.spiffe_id, "entry created");
        Ok(entry_to_proto(&stored))
    }

    async fn agent(&self, raw: &str) -> Result<(SpiffeId, pb::Agent), Status> {
        let id = validate::any_spiffe_id("spiffe_id", raw).map_err(|e| status::invalid(&e))?;
        match self.store.get_agent(&id).await {
            Ok(Some(a)) => Ok((id, agent_to_proto(&a))),
            Ok(None) => Err(Status::not_found(format!(
                "agent {id} is not known to this CA; `meshid agent list` shows the attested agents"
            ))),
            Err(e) => Err(status::store(&e)),
        }
    }

    fn bundle_response(&self, stored: &StoredBundle) -> Result<pb::GetBundleResponse, Status> {
        let bundle = TrustBundle::from_spiffe_json(stored.trust_domain.clone(), &stored.spiffe_json)
            .map_err(|e| {
                tracing::error!(trust_domain = %stored.trust_domain, error = %e, "stored bundle unreadable");
                Status::data_loss(format!(
                    "the stored bundle of {} is unreadable ({e}); set it again",
                    stored.trust_domain
                ))
            })?;
        Ok(pb::GetBundleResponse {
            bundle: Some(bundle_to_proto(&bundle, stored.sequence)),
            spiffe_json: stored.spiffe_json.clone(),
        })
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

#[tonic::async_trait]
impl Admin for AdminService {
    #[tracing::instrument(skip_all, fields(count))]
    async fn create_entries(
        &self,
        request: Request<pb::CreateEntriesRequest>,
    ) -> Result<Response<pb::CreateEntriesResponse>, Status> {
        let entries = request.into_inner().entries;
        tracing::Span::current().record("count", entries.len());
        if entries.is_empty() {
            return Err(Status::invalid_argument(
                "entries is empty; send at least one entry to create",
            ));
        }
        if entries.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "{} entries in one call; the limit is {MAX_BATCH}, split the batch",
                entries.len()
            )));
        }
        let mut results = Vec::with_capacity(entries.len());
        for entry in &entries {
            let result = match self.create_one(entry).await {
                Ok(e) => pb::entry_result::Result::Entry(e),
                Err(s) => pb::entry_result::Result::Error(pb::ItemError {
                    code: s.code() as i32,
                    message: s.message().to_owned(),
                }),
            };
            results.push(pb::EntryResult {
                result: Some(result),
            });
        }
        Ok(Response::new(pb::CreateEntriesResponse { results }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_entry(
        &self,
        request: Request<pb::UpdateEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let Some(entry) = request.into_inner().entry else {
            return Err(Status::invalid_argument(
                "entry is missing; send the entry's new state with its id",
            ));
        };
        if entry.id.is_empty() {
            return Err(Status::invalid_argument(
                "entry.id is empty; name the entry to update (see `meshid entry list`)",
            ));
        }
        if entry.revision < 0 {
            return Err(Status::invalid_argument(
                "entry.revision is negative; send 0 or the revision you read",
            ));
        }
        let new = convert::new_entry_from_proto(&entry, &self.trust_domain)
            .map_err(|e| status::invalid(&e))?;
        let expected = (entry.revision != 0).then_some(entry.revision);
        let updated = self
            .store
            .update_entry(&entry.id, convert::entry_update(new), expected)
            .await
            .map_err(|e| status::store(&e))?;
        tracing::info!(entry_id = %updated.id, revision = updated.revision, "entry updated");
        Ok(Response::new(entry_to_proto(&updated)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_entry(
        &self,
        request: Request<pb::DeleteEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(Status::invalid_argument(
                "id is empty; name the entry to delete",
            ));
        }
        let gone = self
            .store
            .delete_entry(&id)
            .await
            .map_err(|e| status::store(&e))?;
        tracing::info!(entry_id = %gone.id, spiffe_id = %gone.spiffe_id, "entry deleted");
        Ok(Response::new(entry_to_proto(&gone)))
    }

    #[tracing::instrument(skip_all)]
    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(Status::invalid_argument(
                "id is empty; name the entry to show",
            ));
        }
        match self.store.get_entry(&id).await {
            Ok(Some(e)) => Ok(Response::new(entry_to_proto(&e))),
            Ok(None) => Err(Status::not_found(format!(
                "entry {:?} does not exist; `meshid entry list` shows the entries",
                validate::echo(&id)
            ))),
            Err(e) => Err(status::store(&e)),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn list_entries(
        &self,
        request: Request<pb::ListEntriesRequest>,
    ) -> Result<Response<pb::ListEntriesResponse>, Status> {
        let req = request.into_inner();
        let page = page(&req.page_token, req.page_size)?;
        let opt_id = |field, v: &str| {
            (!v.is_empty())
                .then(|| validate::any_spiffe_id(field, v))
                .transpose()
                .map_err(|e| status::invalid(&e))
        };
        let filter = EntryFilter {
            parent_id: opt_id("by_parent_id", &req.by_parent_id)?,
            spiffe_id: opt_id("by_spiffe_id", &req.by_spiffe_id)?,
            selector: req
                .by_selector
                .as_ref()
                .map(convert::selector_from_proto)
                .transpose()
                .map_err(|e| status::invalid(&e))?,
            // Empty: no owner filter (an operator's entries have owner "").
            owner: (!req.by_owner.is_empty())
                .then(|| validate::owner("by_owner", &req.by_owner))
                .transpose()
                .map_err(|e| status::invalid(&e))?,
        };
        let (entries, next) = self
            .store
            .list_entries(&filter, &page)
            .await
            .map_err(|e| status::store(&e))?;
        Ok(Response::new(pb::ListEntriesResponse {
            entries: entries.iter().map(entry_to_proto).collect(),
            next_page_token: next_token(next),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn create_join_token(
        &self,
        request: Request<pb::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::JoinToken>, Status> {
        let req = request.into_inner();
        let ttl = if req.ttl_seconds == 0 {
            self.defaults.token_ttl
        } else {
            validate::ttl(
                "ttl_seconds",
                req.ttl_seconds,
                Duration::from_secs(1),
                validate::MAX_TOKEN_TTL,
            )
            .map_err(|e| status::invalid(&e))?
        };
        let alias = (!req.spiffe_id.is_empty())
            .then(|| validate::workload_id("spiffe_id", &req.spiffe_id, &self.trust_domain))
            .transpose()
            .map_err(|e| status::invalid(&e))?;
        let now = self.now();
        let issued = token::issue(&self.trust_domain, now, ttl, alias)?;
        self.store
            .create_join_token(&issued.record)
            .await
            .map_err(|e| status::store(&e))?;
        tracing::info!(token_id = %issued.record.id, agent_id = %issued.agent_id, "join token created");
        Ok(Response::new(pb::JoinToken {
            token: issued.token,
            id: issued.record.id.clone(),
            expires_at: unix_seconds(issued.record.expires_at),
            agent_spiffe_id: issued.agent_id.to_string(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let req = request.into_inner();
        let page = page(&req.page_token, req.page_size)?;
        let (agents, next) = self
            .store
            .list_agents(&page)
            .await
            .map_err(|e| status::store(&e))?;
        Ok(Response::new(pb::ListAgentsResponse {
            agents: agents.iter().map(agent_to_proto).collect(),
            next_page_token: next_token(next),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_agent(
        &self,
        request: Request<pb::AgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let (_, agent) = self.agent(&request.into_inner().spiffe_id).await?;
        Ok(Response::new(agent))
    }

    #[tracing::instrument(skip_all)]
    async fn evict_agent(
        &self,
        request: Request<pb::AgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let (id, agent) = self.agent(&request.into_inner().spiffe_id).await?;
        self.store
            .delete_agent(&id)
            .await
            .map_err(|e| status::store(&e))?;
        tracing::info!(agent_id = %id, "agent evicted");
        Ok(Response::new(agent))
    }

    #[tracing::instrument(skip_all)]
    async fn ban_agent(
        &self,
        request: Request<pb::AgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let (id, mut agent) = self.agent(&request.into_inner().spiffe_id).await?;
        self.store
            .set_agent_banned(&id, true)
            .await
            .map_err(|e| status::store(&e))?;
        agent.banned = true;
        tracing::info!(agent_id = %id, "agent banned");
        Ok(Response::new(agent))
    }

    #[tracing::instrument(skip_all)]
    async fn get_bundle(
        &self,
        request: Request<pb::GetBundleRequest>,
    ) -> Result<Response<pb::GetBundleResponse>, Status> {
        let raw = request.into_inner().trust_domain;
        let td = if raw.is_empty() {
            self.trust_domain.clone()
        } else {
            validate::trust_domain("trust_domain", &raw).map_err(|e| status::invalid(&e))?
        };
        match self.store.get_bundle(&td).await {
            Ok(Some(b)) => Ok(Response::new(self.bundle_response(&b)?)),
            Ok(None) if td == self.trust_domain => Err(Status::unavailable(format!(
                "the CA has not published the bundle of {td} yet; wait for it to finish starting"
            ))),
            Ok(None) => Err(Status::not_found(format!(
                "no bundle for trust domain {td}; set one with `meshid bundle set --trust-domain {td} --file bundle.json`"
            ))),
            Err(e) => Err(status::store(&e)),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn set_federated_bundle(
        &self,
        request: Request<pb::SetFederatedBundleRequest>,
    ) -> Result<Response<pb::Bundle>, Status> {
        let req = request.into_inner();
        let td = validate::trust_domain("trust_domain", &req.trust_domain)
            .map_err(|e| status::invalid(&e))?;
        if td == self.trust_domain {
            return Err(status::invalid(&InvalidInput::OwnTrustDomain {
                field: "trust_domain",
                value: td,
            }));
        }
        let bundle = TrustBundle::from_spiffe_json(td.clone(), &req.spiffe_json).map_err(|e| {
            Status::invalid_argument(format!(
                "spiffe_json: {e}; pass the bundle endpoint's document as-is"
            ))
        })?;
        if bundle.x509_authorities.is_empty() && bundle.jwt_authorities.is_empty() {
            return Err(Status::invalid_argument(
                "spiffe_json holds no x509-svid or jwt-svid keys; a bundle needs at least one authority",
            ));
        }
        let existing = self
            .store
            .get_bundle(&td)
            .await
            .map_err(|e| status::store(&e))?;
        let previous = existing.as_ref().map_or(0, |b| b.sequence);
        let stored = StoredBundle {
            trust_domain: td.clone(),
            spiffe_json: bundle.to_spiffe_json().into_bytes(),
            sequence: previous + 1,
            updated_at: self.now(),
        };
        self.store
            .put_bundle(&stored, Some(previous))
            .await
            .map_err(|e| status::store(&e))?;
        if let Some(cache) = &self.federated {
            cache.invalidate();
        }
        tracing::info!(trust_domain = %td, sequence = stored.sequence, "federated bundle set");
        Ok(Response::new(bundle_to_proto(&bundle, stored.sequence)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_key_slots(
        &self,
        _request: Request<pb::ListKeySlotsRequest>,
    ) -> Result<Response<pb::ListKeySlotsResponse>, Status> {
        let engine = rotation::engine(self.engine.as_ref())?;
        let views = engine.slots().await.map_err(|e| rotation::status(&e))?;
        Ok(Response::new(pb::ListKeySlotsResponse {
            slots: views.iter().map(rotation::slot).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn prepare_key(
        &self,
        request: Request<pb::PrepareKeyRequest>,
    ) -> Result<Response<pb::KeySlot>, Status> {
        let engine = rotation::engine(self.engine.as_ref())?;
        let kind = rotation::kind(request.get_ref().kind)?;
        let slot = engine
            .prepare(kind)
            .await
            .map_err(|e| rotation::status(&e))?;
        Ok(Response::new(rotation::with_live(engine, slot).await))
    }

    #[tracing::instrument(skip_all)]
    async fn activate_key(
        &self,
        request: Request<pb::ActivateKeyRequest>,
    ) -> Result<Response<pb::KeySlot>, Status> {
        let engine = rotation::engine(self.engine.as_ref())?;
        let req = request.into_inner();
        let kind = rotation::kind(req.kind)?;
        let slot = engine
            .activate(kind, req.force)
            .await
            .map_err(|e| rotation::status(&e))?;
        Ok(Response::new(rotation::with_live(engine, slot).await))
    }

    #[tracing::instrument(skip_all)]
    async fn taint_key(
        &self,
        request: Request<pb::TaintKeyRequest>,
    ) -> Result<Response<pb::KeySlot>, Status> {
        let engine = rotation::engine(self.engine.as_ref())?;
        let key_id = rotation::key_id(&request.get_ref().key_id)?;
        let slot = engine
            .taint(key_id)
            .await
            .map_err(|e| rotation::status(&e))?;
        Ok(Response::new(rotation::with_live(engine, slot).await))
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_key(
        &self,
        request: Request<pb::RevokeKeyRequest>,
    ) -> Result<Response<pb::KeySlot>, Status> {
        let engine = rotation::engine(self.engine.as_ref())?;
        let req = request.get_ref();
        let key_id = rotation::key_id(&req.key_id)?;
        let slot = engine
            .revoke(key_id, req.force)
            .await
            .map_err(|e| rotation::status(&e))?;
        Ok(Response::new(rotation::slot(&crate::rotation::SlotView {
            slot,
            live_svids: 0,
        })))
    }

    async fn get_authority(
        &self,
        _request: Request<pb::GetAuthorityRequest>,
    ) -> Result<Response<pb::Authority>, Status> {
        let slots = self
            .store
            .list_key_slots()
            .await
            .map_err(|e| status::store(&e))?;
        // This replica's active CA (any replica's on a bare store).
        let me = self.engine.as_ref().map(|e| e.replica().as_str());
        let active = |k: &&crate::store::KeySlot| {
            k.kind == KeyKind::X509
                && k.state == SlotState::Active
                && !k.public_pem.trim().is_empty()
        };
        let mine = slots
            .iter()
            .filter(active)
            .find(|k| me.is_none_or(|me| k.replica == me));
        let Some(active) = mine.or_else(|| slots.iter().find(active)) else {
            // Activation retires the old slot, then writes the new one: in
            // between the journal shows no active key, but this replica
            // signs with the authority it holds.
            if let Some(engine) = &self.engine {
                let current = engine.current().load();
                return Ok(Response::new(pb::Authority {
                    trust_domain: self.trust_domain.to_string(),
                    cert_chain: current.cert_chain().iter().map(|c| c.to_vec()).collect(),
                    expires_at: unix_seconds(current.not_after()),
                    kind: self.authority_kind.clone(),
                }));
            }
            return Err(Status::unavailable(
                "the CA has no active signing key yet; wait for it to finish starting",
            ));
        };
        let chain = meshid_identity::x509::pem_certs(&active.public_pem).map_err(|e| {
            Status::data_loss(format!(
                "the certificate chain of CA key slot {} is unreadable: {e}",
                active.id
            ))
        })?;
        Ok(Response::new(pb::Authority {
            trust_domain: self.trust_domain.to_string(),
            cert_chain: chain.iter().map(|c| c.to_vec()).collect(),
            expires_at: unix_seconds(active.not_after),
            kind: self.authority_kind.clone(),
        }))
    }
}

mod token {
    //! Join-token issuance, delegated to the join-token node attestor.

    use std::time::{Duration, SystemTime};

    use meshid_identity::{SpiffeId, TrustDomain};
    use tonic::Status;

    use crate::node_attestor::join_token;
    use crate::store::JoinToken;

    /// A freshly generated token.
    pub(super) struct Issued {
        pub token: String,
        pub record: JoinToken,
        pub agent_id: SpiffeId,
    }

    pub(super) fn issue(
        td: &TrustDomain,
        now: SystemTime,
        ttl: Duration,
        alias: Option<SpiffeId>,
    ) -> Result<Issued, Status> {
        let (token, record) = join_token::generate(now, ttl, alias);
        let agent_id = join_token::agent_id(td, &record.id)
            .map_err(|e| Status::internal(format!("generated token ID is unusable: {e}")))?;
        Ok(Issued {
            token,
            record,
            agent_id,
        })
    }
}
