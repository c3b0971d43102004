//! The CA in process, as the CA's integration tests start it: node API and
//! ops endpoint on `127.0.0.1:0`, state (SQLite, keys, admin socket) in a
//! temp dir. Include with `#[path = "support/server.rs"] mod server;`.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_ca::config::CaConfig;
use meshid_ca::node_attestor::join_token;
use meshid_ca::server::CaServer;
use meshid_identity::tls::SpiffeVerifier;
use meshid_identity::{BundleSet, PrivateKey, SpiffeId, TrustBundle, crypto};
use meshid_proto::ca::{AttestRequest, X509Svid};
use meshid_tests::ClientSvid;
use rustls::pki_types::{CertificateDer, ServerName};

/// The trust domain of every in-process CA here.
pub const TD: &str = "example.org";

/// The config of a CA for [`TD`] on loopback keeping its state in
/// `data_dir`; change fields with `CaConfig { admin_ids, ..config(dir) }`.
pub fn config(data_dir: &Path) -> CaConfig {
    CaConfig {
        trust_domain: Some(TD.parse().unwrap()),
        data_dir: Some(data_dir.to_path_buf()),
        listen: "127.0.0.1:0".parse().unwrap(),
        ops_listen: "127.0.0.1:0".parse().unwrap(),
        ..CaConfig::default()
    }
}

/// Validates `cfg` and starts the CA.
pub async fn start(cfg: CaConfig) -> CaServer {
    CaServer::start(cfg.validate().unwrap()).await.unwrap()
}

/// Validates `cfg` and starts the CA, its key rotation deciding by `clock`.
pub async fn start_with_clock(
    cfg: CaConfig,
    clock: meshid_runtime::clock::SharedClock,
) -> CaServer {
    CaServer::start_with_clock(cfg.validate().unwrap(), clock)
        .await
        .unwrap()
}

/// The chain the CA's node API presents (leaf first), as a TLS client
/// receives it after our SPIFFE verifier accepted it against the bundle the
/// CA serves now.
pub async fn serving_chain(ca: &CaServer) -> Vec<CertificateDer<'static>> {
    let bundles: BundleSet = [ca.authority.bundle().as_ref().clone()]
        .into_iter()
        .collect();
    let verifier = SpiffeVerifier::builder(Arc::new(bundles)).build().unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(crypto::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(ca.node_addr).await.unwrap();
    let name = ServerName::try_from("meshid-ca").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap().to_vec()
}

/// An agent attested through a CA: its ID, key and SVID chain.
#[derive(Debug)]
pub struct Agent {
    /// The agent's SPIFFE ID.
    pub id: SpiffeId,
    /// The SVID's key.
    pub key: PrivateKey,
    /// The SVID chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
}

impl Agent {
    /// The agent holding `key` and the SVID the CA answered with.
    pub fn from_svid(key: PrivateKey, svid: X509Svid) -> Self {
        Self {
            id: svid.spiffe_id.parse().unwrap(),
            key,
            chain: svid
                .cert_chain
                .into_iter()
                .map(CertificateDer::from)
                .collect(),
        }
    }

    /// Its SVID as node API client credentials.
    pub fn svid(&self) -> ClientSvid<'_> {
        ClientSvid {
            chain: &self.chain,
            key: &self.key,
        }
    }
}

/// Attests a new agent through `ca` with a fresh join token (stored in the
/// CA's store), verifying the CA's node API under `bundle`.
pub async fn attest(ca: &CaServer, bundle: &TrustBundle) -> Agent {
    let (token, rec) = join_token::generate(SystemTime::now(), Duration::from_secs(600), None);
    ca.store.create_join_token(&rec).await.unwrap();
    let key = PrivateKey::generate_p256().unwrap();
    let svid = meshid_tests::node_client(ca.node_addr, bundle, None)
        .await
        .attest(AttestRequest {
            attestation_type: "join_token".into(),
            payload: token.into_bytes(),
            csr: meshid_tests::node::csr(&key),
        })
        .await
        .unwrap()
        .into_inner()
        .svid
        .unwrap();
    Agent::from_svid(key, svid)
}
