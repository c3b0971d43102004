//! [`CaClient`] over gRPC: `Attest` over server-authenticated TLS, every
//! other RPC over mTLS with the current agent SVID. Every connection
//! requires the server to present the CA's SPIFFE ID. With several CA
//! addresses (replicas, or a DNS name resolving to several), a call that
//! fails transiently is retried on the next address ([`super::failover`]).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshid_identity::tls::TlsBackend;
use meshid_identity::{BundleSet, SpiffeId};
use meshid_proto::ca::node_client::NodeClient;
use meshid_proto::ca::{
    AttestRequest, AttestResponse, MintJwtSvidsRequest, MintJwtSvidsResponse, RenewAgentRequest,
    RenewAgentResponse, SignX509SvidsRequest, SignX509SvidsResponse, SyncRequest, SyncResponse,
};
use tonic::transport::{Channel, Endpoint};

use super::failover::{Peer, Peers};
use super::tls::{CaTls, Target};
use super::{AgentCredentials, CaClient, CaError};

/// How long one RPC may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The CA node API over the network.
#[derive(Debug)]
pub struct GrpcCaClient {
    peers: Peers,
    ca_id: SpiffeId,
    backend: TlsBackend,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    bundles: Arc<BundleSet>,
    creds: Option<AgentCredentials>,
    /// The address that answered last: every call starts there.
    sticky: Option<Peer>,
    /// The mTLS channel to `sticky` for the current credentials.
    channel: Option<(Peer, Channel)>,
}

/// Which TLS a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Server-authenticated only (attestation).
    Server,
    /// The agent SVID as client certificate.
    Mutual,
}

// === impl GrpcCaClient ===

impl GrpcCaClient {
    /// A client of the CA at `address` (`host:port`) that must present
    /// `ca_id` (e.g. `spiffe://example.org/meshid/ca`); its trust domain is
    /// the agent's.
    ///
    /// Nothing is contacted until the first call.
    pub fn new(address: &str, ca_id: SpiffeId) -> Result<Self, CaError> {
        Self::with_addresses(&[address.to_owned()], ca_id)
    }

    /// A client of the CA replicas at `addresses` (each `host:port`, tried
    /// in this order on failures), every one presenting `ca_id`.
    pub fn with_addresses(addresses: &[String], ca_id: SpiffeId) -> Result<Self, CaError> {
        Ok(Self {
            peers: Peers::new(addresses)?,
            ca_id,
            backend: TlsBackend::Rustls,
            state: Mutex::new(State::default()),
        })
    }

    /// Speaks TLS to the CA with `backend` (rustls unless told otherwise).
    pub fn with_backend(mut self, backend: TlsBackend) -> Self {
        self.backend = backend;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `rpc` on the address that worked last, then on transient
    /// failures on the next addresses, each at most once; the last error
    /// when none answered.
    async fn call<T, F, Fut>(&self, auth: Auth, rpc: F) -> Result<T, CaError>
    where
        F: Fn(NodeClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut tried: Vec<Peer> = Vec::new();
        let mut queue: std::collections::VecDeque<Peer> = self.lock().sticky.into_iter().collect();
        let mut resolved = false;
        let mut last = None;
        loop {
            let peer = match queue.pop_front() {
                Some(p) => p,
                None if resolved => break,
                None => {
                    resolved = true;
                    match self.peers.after(tried.last().copied(), &tried).await {
                        Ok(next) => queue.extend(next),
                        Err(e) => {
                            last.get_or_insert(e);
                        }
                    }
                    continue;
                }
            };
            tried.push(peer);
            let result = match self.channel(peer, auth).await {
                Ok(ch) => rpc(client(ch)).await.map_err(CaError::from),
                Err(e) => Err(e),
            };
            match result {
                Ok(resp) => {
                    self.stick(peer);
                    return Ok(resp.into_inner());
                }
                Err(e) if e.is_transient() => {
                    let e = self.at(peer, e);
                    self.forget(peer);
                    tracing::warn!(ca = %self.peers.describe(peer), error = %e, "CA call failed; trying the next CA address if there is one");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| CaError::Unavailable("no CA address to call".into())))
    }

    /// A channel to `peer`: for mTLS the cached one (built lazily), for
    /// attestation a fresh connection.
    async fn channel(&self, peer: Peer, auth: Auth) -> Result<Channel, CaError> {
        let endpoint = self.endpoint(peer)?;
        if auth == Auth::Server {
            let bundles = self.lock().bundles.clone();
            return CaTls::new(self.target(peer, bundles), None)?
                .connect(&endpoint)
                .await
                .map_err(transport);
        }
        let mut st = self.lock();
        if let Some((p, ch)) = &st.channel
            && *p == peer
        {
            return Ok(ch.clone());
        }
        let creds = st.creds.as_ref().ok_or(CaError::NoCredentials)?;
        let ch =
            CaTls::new(self.target(peer, st.bundles.clone()), Some(creds))?.connect_lazy(&endpoint);
        st.channel = Some((peer, ch.clone()));
        Ok(ch)
    }

    /// Who `peer` must be, under `bundles`.
    fn target(&self, peer: Peer, bundles: Arc<BundleSet>) -> Target<'_> {
        Target {
            backend: self.backend,
            ca_id: &self.ca_id,
            bundles,
            server_name: self.peers.server_name(peer),
        }
    }

    fn endpoint(&self, peer: Peer) -> Result<Endpoint, CaError> {
        meshid_runtime::tls::endpoint(&peer.addr.to_string(), RPC_TIMEOUT, CONNECT_TIMEOUT)
            .map(|(e, _)| e)
            .map_err(|e| CaError::Tls(format!("CA address {e}")))
    }

    /// `peer` answered: start there from now on.
    fn stick(&self, peer: Peer) {
        let mut st = self.lock();
        if st.sticky != Some(peer) {
            if st.sticky.is_some() {
                tracing::info!(ca = %self.peers.describe(peer), "using this CA address from now on");
            }
            st.sticky = Some(peer);
        }
    }

    /// `peer` failed: drop its channel.
    fn forget(&self, peer: Peer) {
        let mut st = self.lock();
        if st.channel.as_ref().is_some_and(|(p, _)| *p == peer) {
            st.channel = None;
        }
    }

    /// A transient error naming the address it came from.
    fn at(&self, peer: Peer, e: CaError) -> CaError {
        match e {
            CaError::Unavailable(m) => {
                CaError::Unavailable(format!("{}: {m}", self.peers.describe(peer)))
            }
            e => e,
        }
    }
}

fn client(ch: Channel) -> NodeClient<Channel> {
    NodeClient::new(ch)
        .max_decoding_message_size(meshid_proto::MAX_MESSAGE_SIZE)
        .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE)
}

fn transport(e: tonic::transport::Error) -> CaError {
    if let Some(wrong) = CaError::wrong_ca_in(&e) {
        return wrong;
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    CaError::Unavailable(msg)
}

#[async_trait::async_trait]
impl CaClient for GrpcCaClient {
    async fn attest(&self, req: AttestRequest) -> Result<AttestResponse, CaError> {
        self.call(Auth::Server, |mut c| {
            let req = req.clone();
            async move { c.attest(req).await }
        })
        .await
    }

    async fn renew_agent(&self, req: RenewAgentRequest) -> Result<RenewAgentResponse, CaError> {
        self.call(Auth::Mutual, |mut c| {
            let req = req.clone();
            async move { c.renew_agent(req).await }
        })
        .await
    }

    async fn sync(&self, req: SyncRequest) -> Result<SyncResponse, CaError> {
        self.call(Auth::Mutual, |mut c| {
            let req = req.clone();
            async move { c.sync(req).await }
        })
        .await
    }

    async fn sign_x509_svids(
        &self,
        req: SignX509SvidsRequest,
    ) -> Result<SignX509SvidsResponse, CaError> {
        self.call(Auth::Mutual, |mut c| {
            let req = req.clone();
            async move { c.sign_x509_svids(req).await }
        })
        .await
    }

    async fn mint_jwt_svids(
        &self,
        req: MintJwtSvidsRequest,
    ) -> Result<MintJwtSvidsResponse, CaError> {
        self.call(Auth::Mutual, |mut c| {
            let req = req.clone();
            async move { c.mint_jwt_svids(req).await }
        })
        .await
    }

    fn set_credentials(&self, creds: Option<AgentCredentials>) {
        let mut st = self.lock();
        st.creds = creds;
        st.channel = None;
    }

    fn set_bundles(&self, bundles: Arc<BundleSet>) {
        let mut st = self.lock();
        if *st.bundles != *bundles {
            st.bundles = bundles;
            st.channel = None;
        }
    }
}
