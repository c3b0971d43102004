//! The node API (`meshid.ca.v1.Node`): what agents call.
//!
//! `Attest` is the only call that works without a client certificate; every
//! other call needs the verified client certificate of the mTLS connection
//! to be an agent's current SVID (or, just after a renewal, the one it
//! renewed from; see `node::auth`) and refuses agents that were banned or
//! evicted, even while their certificate is still valid.
//!
//! The check is one primary-key read of the agent per call, never a cache:
//! with CA replicas on PostgreSQL a ban or eviction on one replica must
//! bind every replica at once. Entries are read from the store on every
//! `Sync` too, so one written through another replica is in the next page;
//! only federated bundles are cached (see [`FederatedBundles::MAX_AGE`]).

mod auth;
mod convert;
mod downstream;
mod federated;
mod sign;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use meshid_identity::verify_csr;
use meshid_proto::ca::node_server::Node;
use meshid_proto::ca::{
    AttestRequest, AttestResponse, MintJwtSvidsRequest, MintJwtSvidsResponse, RenewAgentRequest,
    RenewAgentResponse, SignDownstreamCaRequest, SignDownstreamCaResponse, SignX509SvidsRequest,
    SignX509SvidsResponse, SyncRequest, SyncResponse,
};
use meshid_runtime::clock::SharedClock;
use tonic::{Request, Response, Status};

use crate::admin::convert::entry_to_proto;
use crate::authority::CurrentAuthority;
use crate::metrics::CaMetrics;
use crate::node_attestor::{self, AttestError, NodeAttestor};
use crate::store::{Agent, IssuanceRecord, MAX_PAGE_LIMIT, Page, Store, StoreError};

pub use auth::{Binding, ClientSvid, PeerCertificates, TlsConnection, caller_id, client_svid};
pub use downstream::DEFAULT_DOWNSTREAM_CA_TTL;
pub use federated::{BundleMap, FederatedBundles};

/// Most CSRs (or JWT requests) one batch call may carry.
pub const MAX_BATCH: usize = 1000;
/// Sync page size when the agent asks for none.
pub const DEFAULT_SYNC_PAGE: u32 = 500;

/// The node API service.
#[derive(Clone)]
pub struct NodeService {
    inner: Arc<Inner>,
    downstream_ca_ttl: Duration,
}

struct Inner {
    authority: CurrentAuthority,
    store: Arc<dyn Store>,
    attestors: Vec<Arc<dyn NodeAttestor>>,
    metrics: CaMetrics,
    clock: SharedClock,
    federated: FederatedBundles,
}

// === impl NodeService ===

impl NodeService {
    /// A service signing with `authority`, backed by `store`, accepting the
    /// given node attestors.
    pub fn new(
        authority: CurrentAuthority,
        store: Arc<dyn Store>,
        attestors: Vec<Arc<dyn NodeAttestor>>,
        metrics: CaMetrics,
    ) -> Self {
        Self::with_clock(
            authority,
            store,
            attestors,
            metrics,
            meshid_runtime::clock::system(),
        )
    }

    /// Like [`NodeService::new`] with an injected clock.
    pub fn with_clock(
        authority: CurrentAuthority,
        store: Arc<dyn Store>,
        attestors: Vec<Arc<dyn NodeAttestor>>,
        metrics: CaMetrics,
        clock: SharedClock,
    ) -> Self {
        let federated =
            FederatedBundles::new(Arc::clone(&store), authority.load().trust_domain().clone());
        Self {
            inner: Arc::new(Inner {
                authority,
                store,
                attestors,
                metrics,
                clock,
                federated,
            }),
            downstream_ca_ttl: DEFAULT_DOWNSTREAM_CA_TTL,
        }
    }

    /// Signs downstream CAs' intermediates for `ttl` (clamped to this CA's
    /// own notAfter) instead of [`DEFAULT_DOWNSTREAM_CA_TTL`].
    pub fn with_downstream_ca_ttl(mut self, ttl: Duration) -> Self {
        self.downstream_ca_ttl = ttl;
        self
    }

    /// The federated-bundle cache `Sync` serves from. Whoever writes a
    /// bundle (the admin API) must call [`FederatedBundles::invalidate`]
    /// on it so the next `Sync` sees the change.
    pub fn federated_bundles(&self) -> FederatedBundles {
        self.inner.federated.clone()
    }

    fn now(&self) -> SystemTime {
        self.inner.clock.now()
    }

    /// The attested, not banned agent whose current (or previous) SVID is
    /// this request's client certificate, and that certificate's serial.
    /// The first call with a renewed SVID retires the previous one.
    async fn agent<T>(&self, req: &Request<T>) -> Result<(Agent, String), Status> {
        let svid = client_svid(req)?;
        let id = &svid.spiffe_id;
        let store = &self.inner.store;
        let mut agent = store
            .get_agent(id)
            .await
            .map_err(convert::store_status)?
            .ok_or_else(|| not_attested(id))?;
        let binding = auth::binding(&agent, &svid)?;
        if agent.banned {
            return Err(Status::permission_denied(format!(
                "agent {id} is banned; an operator must unban it"
            )));
        }
        if binding == Binding::Current && agent.previous_serial.is_some() {
            store
                .confirm_agent_serial(id, &svid.serial)
                .await
                .map_err(convert::store_status)?;
            agent.previous_serial = None;
        }
        Ok((agent, svid.serial))
    }

    async fn issue_agent_svid(
        &self,
        agent_id: &meshid_identity::SpiffeId,
        csr: &[u8],
        now: SystemTime,
    ) -> Result<crate::authority::IssuedX509Svid, Status> {
        let m = &self.inner.metrics;
        let start = Instant::now();
        let verified = verify_csr(csr).map_err(|e| {
            m.signature("agent", "invalid");
            Status::invalid_argument(format!("agent CSR: {e}"))
        })?;
        // Off the async workers: the CA key may be on a token.
        let authority = self.inner.authority.load();
        let id = agent_id.clone();
        let signed = tokio::task::spawn_blocking(move || {
            authority.sign_agent_svid(&id, &verified.public_key_der, now)
        })
        .await
        .map_err(|e| Status::internal(format!("signing task failed: {e}")))?;
        let issued = signed.map_err(|e| {
            m.signature("agent", "error");
            Status::new(convert::signing_code(&e, m), e.to_string())
        })?;
        m.signature("agent", "ok");
        m.signing_latency(start.elapsed());
        Ok(issued)
    }
}

impl std::fmt::Debug for NodeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeService")
            .field("authority", &self.inner.authority)
            .field("attestors", &self.inner.attestors)
            .finish()
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    #[tracing::instrument(skip_all, fields(attestation_type))]
    async fn attest(
        &self,
        req: Request<AttestRequest>,
    ) -> Result<Response<AttestResponse>, Status> {
        let req = req.into_inner();
        tracing::Span::current().record("attestation_type", req.attestation_type.as_str());
        let attestor = self
            .inner
            .attestors
            .iter()
            .find(|a| a.name() == req.attestation_type)
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "attestation type {:?} is not enabled on this CA; use one of {:?}",
                    req.attestation_type.chars().take(64).collect::<String>(),
                    self.inner
                        .attestors
                        .iter()
                        .map(|a| a.name())
                        .collect::<Vec<_>>()
                ))
            })?;
        // Check the CSR before consuming the one-time evidence.
        verify_csr(&req.csr).map_err(|e| Status::invalid_argument(format!("agent CSR: {e}")))?;
        let now = self.now();
        let node = attestor
            .attest(&req.payload, now)
            .await
            .map_err(|e| match e {
                AttestError::Malformed(_) => Status::invalid_argument(e.to_string()),
                AttestError::Refused(_) => Status::unauthenticated(e.to_string()),
                AttestError::Unavailable(_) => Status::unavailable(e.to_string()),
            })?;
        let store = &self.inner.store;
        let existing = store
            .get_agent(&node.agent_id)
            .await
            .map_err(convert::store_status)?;
        if existing.is_some_and(|a| a.banned) {
            return Err(Status::permission_denied(format!(
                "agent {} is banned; an operator must unban it",
                node.agent_id
            )));
        }
        let issued = self.issue_agent_svid(&node.agent_id, &req.csr, now).await?;
        let agent_tenant = node.tenant.clone();
        store
            .upsert_agent(&Agent {
                spiffe_id: node.agent_id.clone(),
                attestation_type: attestor.name().to_owned(),
                serial: issued.serial.clone(),
                previous_serial: None,
                expires_at: issued.not_after,
                banned: false,
                selectors: node.selectors,
                tenant: node.tenant,
                created_at: now,
                updated_at: now,
            })
            .await
            .map_err(convert::store_status)?;
        store
            .record_issuances(&[IssuanceRecord {
                serial: issued.serial.clone(),
                spiffe_id: node.agent_id.clone(),
                agent_id: Some(node.agent_id.clone()),
                entry_id: None,
                not_after: issued.not_after,
                issued_at: now,
                ca_key_id: Some(issued.ca_key_id.clone()),
                tenant: agent_tenant,
            }])
            .await
            .map_err(convert::store_status)?;
        tracing::info!(agent = %node.agent_id, "agent attested");
        Ok(Response::new(AttestResponse {
            svid: Some(convert::x509_svid(&node.agent_id, &issued, "")),
            bundle: Some(convert::bundle(&self.inner.authority.bundle())),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn renew_agent(
        &self,
        req: Request<RenewAgentRequest>,
    ) -> Result<Response<RenewAgentResponse>, Status> {
        let (agent, presented) = self.agent(&req).await?;
        let now = self.now();
        let issued = self
            .issue_agent_svid(&agent.spiffe_id, &req.get_ref().csr, now)
            .await?;
        let store = &self.inner.store;
        store
            .record_issuances(&[IssuanceRecord {
                serial: issued.serial.clone(),
                spiffe_id: agent.spiffe_id.clone(),
                agent_id: Some(agent.spiffe_id.clone()),
                entry_id: None,
                not_after: issued.not_after,
                issued_at: now,
                ca_key_id: Some(issued.ca_key_id.clone()),
                tenant: agent.tenant.clone(),
            }])
            .await
            .map_err(convert::store_status)?;
        store
            .renew_agent_serial(
                &agent.spiffe_id,
                &presented,
                &issued.serial,
                issued.not_after,
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => not_attested(&agent.spiffe_id),
                StoreError::Conflict { .. } => Status::unauthenticated(format!(
                    "agent {} was banned, or its SVID replaced, while renewing; \
                     call with the agent's latest SVID, or attest again",
                    agent.spiffe_id
                )),
                e => convert::store_status(e),
            })?;
        Ok(Response::new(RenewAgentResponse {
            svid: Some(convert::x509_svid(&agent.spiffe_id, &issued, "")),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn sync(&self, req: Request<SyncRequest>) -> Result<Response<SyncResponse>, Status> {
        let (agent, _) = self.agent(&req).await?;
        let req = req.into_inner();
        let after = match req.page_token.as_str() {
            "" => None,
            t if t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
                Some(t.to_owned())
            }
            _ => {
                return Err(Status::invalid_argument(
                    "page_token is not one this CA returned",
                ));
            }
        };
        let limit = match req.page_size {
            0 => DEFAULT_SYNC_PAGE,
            n => n.min(MAX_PAGE_LIMIT),
        };
        let parents = sign::parents(&agent);
        let store = &self.inner.store;
        let (mut entries, next) = store
            .list_entries_by_parents(&parents, &Page { after, limit })
            .await
            .map_err(convert::store_status)?;
        // Never signed (see `sign`), so not worth a key on the agent.
        entries.retain(|e| !e.spiffe_id.is_reserved());
        let mut federated: Vec<_> = entries
            .iter()
            .flat_map(|e| e.federates_with.iter().cloned())
            .collect();
        federated.sort();
        federated.dedup();
        // One cached read serves every page of every agent until a bundle
        // changes; see `FederatedBundles`.
        let federated_bundles = if federated.is_empty() {
            Vec::new()
        } else {
            let cached = self
                .inner
                .federated
                .get(self.now())
                .await
                .map_err(convert::store_status)?;
            federated
                .iter()
                .filter_map(|td| cached.get(td).cloned())
                .collect()
        };
        Ok(Response::new(SyncResponse {
            entries: entries.iter().map(entry_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
            bundle: Some(convert::bundle(&self.inner.authority.bundle())),
            federated_bundles,
            ca_keys: convert::ca_keys(&self.inner.authority.signing_keys()),
        }))
    }

    #[tracing::instrument(skip_all, fields(batch))]
    async fn sign_x509_svids(
        &self,
        req: Request<SignX509SvidsRequest>,
    ) -> Result<Response<SignX509SvidsResponse>, Status> {
        let (agent, _) = self.agent(&req).await?;
        let requests = req.into_inner().requests;
        tracing::Span::current().record("batch", requests.len());
        if requests.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "{} CSRs in one request; the limit is {MAX_BATCH}, split the batch",
                requests.len()
            )));
        }
        let results = sign::x509_batch(
            &self.inner.authority.load(),
            &self.inner.store,
            &self.inner.metrics,
            &agent,
            requests,
            self.now(),
        )
        .await?;
        Ok(Response::new(SignX509SvidsResponse { results }))
    }

    #[tracing::instrument(skip_all)]
    async fn mint_jwt_svids(
        &self,
        req: Request<MintJwtSvidsRequest>,
    ) -> Result<Response<MintJwtSvidsResponse>, Status> {
        let (agent, _) = self.agent(&req).await?;
        let requests = req.into_inner().requests;
        if requests.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "{} JWT requests in one call; the limit is {MAX_BATCH}",
                requests.len()
            )));
        }
        let results = sign::jwt_batch(
            &self.inner.authority.load(),
            &self.inner.store,
            &self.inner.metrics,
            &agent,
            requests,
            self.now(),
        )
        .await?;
        Ok(Response::new(MintJwtSvidsResponse { results }))
    }

    #[tracing::instrument(skip_all)]
    async fn sign_downstream_ca(
        &self,
        req: Request<SignDownstreamCaRequest>,
    ) -> Result<Response<SignDownstreamCaResponse>, Status> {
        let (agent, _) = self.agent(&req).await?;
        let now = self.now();
        let resp = downstream::sign(self, &agent, req.into_inner(), now).await?;
        Ok(Response::new(resp))
    }
}

fn not_attested(id: &meshid_identity::SpiffeId) -> Status {
    Status::unauthenticated(format!(
        "{id} is not an attested agent (it may have been evicted, or the client certificate \
         is not an agent SVID); attest again"
    ))
}

/// Converts a requested TTL in seconds.
fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// The node aliases of an agent, for callers outside this module.
pub fn agent_parents(agent: &Agent) -> Vec<meshid_identity::SpiffeId> {
    let mut v = vec![agent.spiffe_id.clone()];
    v.extend(node_attestor::aliases(&agent.selectors));
    v
}
