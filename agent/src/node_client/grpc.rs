//! [`CaClient`] over gRPC: `Attest` over server-authenticated TLS, every
//! other RPC over mTLS with the current agent SVID. Every connection
//! requires the server to present the CA's SPIFFE ID.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshid_identity::{BundleSet, SpiffeId};
use meshid_proto::ca::node_client::NodeClient;
use meshid_proto::ca::{
    AttestRequest, AttestResponse, MintJwtSvidsRequest, MintJwtSvidsResponse, RenewAgentRequest,
    RenewAgentResponse, SignX509SvidsRequest, SignX509SvidsResponse, SyncRequest, SyncResponse,
};
use rustls_pki_types::ServerName;
use tonic::transport::{Channel, Endpoint};

use super::{AgentCredentials, CaClient, CaError, tls};

/// How long one RPC may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The CA node API over the network.
#[derive(Debug)]
pub struct GrpcCaClient {
    endpoint: Endpoint,
    server_name: ServerName<'static>,
    ca_id: SpiffeId,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    bundles: Arc<BundleSet>,
    creds: Option<AgentCredentials>,
    channel: Option<Channel>,
}

// === impl GrpcCaClient ===

impl GrpcCaClient {
    /// A client of the CA at `address` (`host:port`) that must present
    /// `ca_id` (e.g. `spiffe://example.org/meshid/ca`); its trust domain is
    /// the agent's.
    ///
    /// Nothing is contacted until the first call.
    pub fn new(address: &str, ca_id: SpiffeId) -> Result<Self, CaError> {
        let (endpoint, server_name) =
            meshid_runtime::tls::endpoint(address, RPC_TIMEOUT, CONNECT_TIMEOUT)
                .map_err(|e| CaError::Tls(format!("CA address {e}")))?;
        Ok(Self {
            endpoint,
            server_name,
            ca_id,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The mTLS channel for the current credentials (built lazily).
    fn mtls(&self) -> Result<NodeClient<Channel>, CaError> {
        let mut st = self.lock();
        if let Some(ch) = &st.channel {
            return Ok(client(ch.clone()));
        }
        let creds = st.creds.as_ref().ok_or(CaError::NoCredentials)?;
        let config = tls::client_config(&self.ca_id, st.bundles.clone(), Some(creds))?;
        let ch = self
            .endpoint
            .connect_with_connector_lazy(meshid_runtime::tls::connector(
                config,
                self.server_name.clone(),
            ));
        st.channel = Some(ch.clone());
        Ok(client(ch))
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
        let bundles = self.lock().bundles.clone();
        let config = tls::client_config(&self.ca_id, bundles, None)?;
        let ch = self
            .endpoint
            .connect_with_connector(meshid_runtime::tls::connector(
                config,
                self.server_name.clone(),
            ))
            .await
            .map_err(transport)?;
        Ok(client(ch).attest(req).await?.into_inner())
    }

    async fn renew_agent(&self, req: RenewAgentRequest) -> Result<RenewAgentResponse, CaError> {
        Ok(self.mtls()?.renew_agent(req).await?.into_inner())
    }

    async fn sync(&self, req: SyncRequest) -> Result<SyncResponse, CaError> {
        Ok(self.mtls()?.sync(req).await?.into_inner())
    }

    async fn sign_x509_svids(
        &self,
        req: SignX509SvidsRequest,
    ) -> Result<SignX509SvidsResponse, CaError> {
        Ok(self.mtls()?.sign_x509_svids(req).await?.into_inner())
    }

    async fn mint_jwt_svids(
        &self,
        req: MintJwtSvidsRequest,
    ) -> Result<MintJwtSvidsResponse, CaError> {
        Ok(self.mtls()?.mint_jwt_svids(req).await?.into_inner())
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
