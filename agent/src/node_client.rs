//! The agent's client of the CA node API.
//!
//! [`CaClient`] is the seam: the attestor and SVID manager call its five
//! RPCs, [`GrpcCaClient`] implements them over (m)TLS, and tests plug in an
//! in-memory CA.

mod error;
mod failover;
mod grpc;
mod svid;
mod tls;

use std::fmt;
use std::sync::Arc;

use meshid_identity::{BundleSet, PrivateKey};
use meshid_proto::ca::{
    AttestRequest, AttestResponse, MintJwtSvidsRequest, MintJwtSvidsResponse, RenewAgentRequest,
    RenewAgentResponse, SignX509SvidsRequest, SignX509SvidsResponse, SyncRequest, SyncResponse,
};
use rustls_pki_types::CertificateDer;

pub use error::CaError;
pub use failover::MAX_PEERS;
pub use grpc::GrpcCaClient;
pub use svid::{IssuedSvid, check_x509_svid};

/// A CSR (DER) for `key`, a key generated on this node
/// ([`meshid_identity::x509::csr::key_only_csr`]).
pub fn csr_der(key: &PrivateKey) -> Result<Vec<u8>, CaError> {
    meshid_identity::x509::csr::key_only_csr(key)
        .map_err(|e| CaError::Tls(format!("cannot build a CSR: {e}")))
}

/// The agent's own credentials for mTLS to the CA.
#[derive(Clone)]
pub struct AgentCredentials {
    /// The agent SVID chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The agent SVID's key.
    pub key: PrivateKey,
}

/// The CA node API as the agent uses it.
#[async_trait::async_trait]
pub trait CaClient: Send + Sync + fmt::Debug + 'static {
    /// Proves the node's identity (server-authenticated TLS only).
    async fn attest(&self, req: AttestRequest) -> Result<AttestResponse, CaError>;
    /// Renews the agent's own SVID.
    async fn renew_agent(&self, req: RenewAgentRequest) -> Result<RenewAgentResponse, CaError>;
    /// One page of entries and bundles.
    async fn sync(&self, req: SyncRequest) -> Result<SyncResponse, CaError>;
    /// Signs a batch of CSRs.
    async fn sign_x509_svids(
        &self,
        req: SignX509SvidsRequest,
    ) -> Result<SignX509SvidsResponse, CaError>;
    /// Mints JWT-SVIDs.
    async fn mint_jwt_svids(
        &self,
        req: MintJwtSvidsRequest,
    ) -> Result<MintJwtSvidsResponse, CaError>;
    /// Sets the agent SVID to present from now on (`None` before attestation).
    fn set_credentials(&self, _creds: Option<AgentCredentials>) {}
    /// Sets the roots that authenticate the CA.
    fn set_bundles(&self, _bundles: Arc<BundleSet>) {}
}

// === impl AgentCredentials ===

impl fmt::Debug for AgentCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentCredentials")
            .field("chain_len", &self.chain.len())
            .field("key", &"...")
            .finish()
    }
}
