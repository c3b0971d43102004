//! The downstream CA's client of its upstream's node API: `Attest` over
//! server-authenticated TLS, `RenewAgent` and `SignDownstreamCa` over mTLS
//! with the downstream's agent SVID (it also carries the downstream's JWT
//! key for the upstream to publish). Every connection requires the
//! upstream to present its pinned SPIFFE ID, on the CA's TLS backend:
//! [`meshid_identity::tls::pinned_client_config`] on rustls, the same
//! [`PeerCheck`](meshid_identity::tls::PeerCheck) rules on OpenSSL
//! ([`openssl`]); both over [`meshid_runtime::tls::connector`].

use std::sync::Arc;
use std::time::Duration;

use meshid_identity::tls::{ClientCert, TlsBackend, pinned_client_config};
use meshid_identity::x509::csr::key_only_csr;
use meshid_identity::{BundleSet, JwtAuthority, PrivateKey, SpiffeId, TrustBundle, TrustDomain};
use meshid_proto::ca::node_client::NodeClient;
use meshid_proto::ca::{
    AttestRequest, JwtKey, RenewAgentRequest, SignDownstreamCaRequest, SignDownstreamCaResponse,
};
use meshid_proto::convert::trust_bundle_of;
use meshid_runtime::tls::{Rustls, connector};
use rustls_pki_types::{CertificateDer, ServerName};
use tonic::transport::{Channel, Endpoint};

use super::MeshidError;

#[cfg(feature = "openssl")]
mod openssl;
#[cfg(not(feature = "openssl"))]
#[path = "client/openssl_absent.rs"]
mod openssl;

/// How long one RPC may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The attestation type of join tokens.
const JOIN_TOKEN: &str = "join_token";

/// An agent SVID the upstream issued: chain (leaf first) and key.
#[derive(Clone)]
pub(super) struct AgentSvid {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKey,
}

/// The upstream CA's node API.
#[derive(Debug)]
pub(super) struct UpstreamClient {
    endpoint: Endpoint,
    server_name: ServerName<'static>,
    ca_id: SpiffeId,
    backend: TlsBackend,
}

// === impl UpstreamClient ===

impl UpstreamClient {
    /// A client of the CA at `address` (`host:port`) that must present
    /// `ca_id`. Nothing is contacted until the first call.
    pub fn new(address: &str, ca_id: SpiffeId) -> Result<Self, MeshidError> {
        let (endpoint, server_name) =
            meshid_runtime::tls::endpoint(address, RPC_TIMEOUT, CONNECT_TIMEOUT)
                .map_err(|e| MeshidError::Config(format!("ca_address {e}")))?;
        Ok(Self {
            endpoint,
            server_name,
            ca_id,
            backend: TlsBackend::Rustls,
        })
    }

    /// Speaks TLS to the upstream with `backend` (rustls unless told
    /// otherwise).
    pub fn with_backend(mut self, backend: TlsBackend) -> Self {
        self.backend = backend;
        self
    }

    /// Attests with `token`; returns the agent SVID chain for `key` and
    /// the upstream's bundle.
    pub async fn attest(
        &self,
        roots: &TrustBundle,
        token: &str,
        key: &PrivateKey,
    ) -> Result<(Vec<CertificateDer<'static>>, meshid_proto::ca::Bundle), MeshidError> {
        let req = AttestRequest {
            attestation_type: JOIN_TOKEN.into(),
            payload: token.as_bytes().to_vec(),
            csr: csr(key)?,
        };
        let resp = self
            .connect(roots, None)
            .await?
            .attest(req)
            .await
            .map_err(|s| MeshidError::from_status("attesting with the join token", s))?
            .into_inner();
        let svid = resp
            .svid
            .ok_or_else(|| MeshidError::BadResponse("attestation returned no SVID".into()))?;
        let bundle = resp
            .bundle
            .ok_or_else(|| MeshidError::BadResponse("attestation returned no bundle".into()))?;
        Ok((certs(svid.cert_chain), bundle))
    }

    /// Renews the agent SVID `current` for the new key `key`.
    pub async fn renew_agent(
        &self,
        roots: &TrustBundle,
        current: &AgentSvid,
        key: &PrivateKey,
    ) -> Result<Vec<CertificateDer<'static>>, MeshidError> {
        let req = RenewAgentRequest { csr: csr(key)? };
        let resp = self
            .connect(roots, Some(current))
            .await?
            .renew_agent(req)
            .await
            .map_err(|s| MeshidError::from_status("renewing the agent SVID", s))?
            .into_inner();
        let svid = resp
            .svid
            .ok_or_else(|| MeshidError::BadResponse("renewal returned no SVID".into()))?;
        Ok(certs(svid.cert_chain))
    }

    /// Asks the upstream to sign the CA CSR `csr` and to publish this CA's
    /// JWT key `jwt` in its bundle.
    pub async fn sign_ca(
        &self,
        roots: &TrustBundle,
        agent: &AgentSvid,
        csr: Vec<u8>,
        jwt: &JwtAuthority,
    ) -> Result<SignDownstreamCaResponse, MeshidError> {
        let req = SignDownstreamCaRequest {
            csr,
            jwt_authority: Some(JwtKey {
                key_id: jwt.key_id.clone(),
                public_key: jwt.public_key_der.clone(),
                expires_at: 0,
            }),
        };
        Ok(self
            .connect(roots, Some(agent))
            .await?
            .sign_downstream_ca(req)
            .await
            .map_err(|s| MeshidError::from_status("signing this CA's intermediate", s))?
            .into_inner())
    }

    async fn connect(
        &self,
        roots: &TrustBundle,
        client: Option<&AgentSvid>,
    ) -> Result<NodeClient<Channel>, MeshidError> {
        let bundles = Arc::new([roots.clone()].into_iter().collect::<BundleSet>());
        let setup = |e: String| MeshidError::Config(format!("TLS to the upstream CA: {e}"));
        let connected = match self.backend {
            TlsBackend::Rustls => {
                let cert = client.map(|c| ClientCert {
                    chain: &c.chain,
                    key: &c.key,
                });
                let config = pinned_client_config(&self.ca_id, bundles, cert)
                    .map_err(|e| setup(e.to_string()))?;
                let tls = Rustls::new(Arc::new(config), self.server_name.clone());
                self.endpoint.connect_with_connector(connector(tls)).await
            }
            TlsBackend::Openssl => {
                let cert = client.map(|c| (c.chain.as_slice(), &c.key));
                let tls = openssl::Handshake::new(&self.ca_id, bundles, cert)
                    .map_err(|e| setup(e.to_string()))?;
                self.endpoint.connect_with_connector(connector(tls)).await
            }
        };
        let channel = connected.map_err(|e| MeshidError::Unavailable(chain_text(&e)))?;
        Ok(NodeClient::new(channel)
            .max_decoding_message_size(meshid_proto::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE))
    }
}

impl std::fmt::Debug for AgentSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSvid")
            .field("chain_len", &self.chain.len())
            .field("key", &"...")
            .finish()
    }
}

/// A wire bundle of `td` as a [`TrustBundle`] (X.509 roots and JWT keys).
pub(super) fn bundle_of(
    td: &TrustDomain,
    b: &meshid_proto::ca::Bundle,
) -> Result<TrustBundle, MeshidError> {
    trust_bundle_of(td, b)
        .map_err(|e| MeshidError::BadResponse(format!("the upstream's bundle: {e}")))
}

fn certs(ders: Vec<Vec<u8>>) -> Vec<CertificateDer<'static>> {
    ders.into_iter().map(CertificateDer::from).collect()
}

/// A CSR (DER) for `key`: the upstream uses only its public key.
fn csr(key: &PrivateKey) -> Result<Vec<u8>, MeshidError> {
    key_only_csr(key).map_err(|e| MeshidError::Config(format!("cannot build the agent CSR: {e}")))
}

fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}
