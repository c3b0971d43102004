//! A test client for the CA's node API: gRPC over rustls (TLS 1.3, ALPN
//! h2) that pins the CA's SPIFFE ID under the given bundle and optionally
//! presents an agent SVID.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use meshid_identity::crypto;
use meshid_identity::tls::{PeerMatch, SpiffeVerifier};
use meshid_identity::{BundleSet, PrivateKey, TrustBundle};
use meshid_proto::ca::node_client::NodeClient;
use rustls::pki_types::{CertificateDer, ServerName};
use tonic::transport::{Channel, Endpoint};

/// Largest message the client sends (sign batches of many CSRs).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// An agent's credentials on the node API: its SVID chain and key.
#[derive(Clone, Copy, Debug)]
pub struct ClientSvid<'a> {
    /// The SVID chain, leaf first.
    pub chain: &'a [CertificateDer<'static>],
    /// The SVID's private key.
    pub key: &'a PrivateKey,
}

/// A node API client on [`ca_channel`], sending messages up to 64 MiB.
pub async fn node_client(
    addr: SocketAddr,
    bundle: &TrustBundle,
    client: Option<ClientSvid<'_>>,
) -> NodeClient<Channel> {
    NodeClient::new(ca_channel(addr, bundle, client).await).max_encoding_message_size(MAX_MESSAGE)
}

/// A gRPC channel to the CA's TLS listener at `addr` (node API, and the
/// admin API for `admin_ids`); the server must present the SVID
/// `spiffe://<bundle's trust domain>/meshid/ca` under `bundle`. With
/// `client`, that SVID is presented; without, the caller is anonymous
/// (only `Attest` is allowed then).
pub async fn ca_channel(
    addr: SocketAddr,
    bundle: &TrustBundle,
    client: Option<ClientSvid<'_>>,
) -> Channel {
    try_ca_channel(addr, bundle, client)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// [`ca_channel`], or why it could not connect (the TLS handshake was
/// refused, nothing listens), for tests of connections that must fail.
pub async fn try_ca_channel(
    addr: SocketAddr,
    bundle: &TrustBundle,
    client: Option<ClientSvid<'_>>,
) -> Result<Channel, String> {
    let ca_id = bundle
        .trust_domain
        .id_with_path(meshid_identity::id::CA_PATH)
        .unwrap_or_else(|e| panic!("the CA's SPIFFE ID: {e}"));
    let bundles: BundleSet = [bundle.clone()].into_iter().collect();
    let verifier = SpiffeVerifier::builder(Arc::new(bundles))
        .peer(PeerMatch::OneOf(vec![ca_id]))
        .build()
        .unwrap_or_else(|e| panic!("verifier for the CA: {e}"));
    let builder = rustls::ClientConfig::builder_with_provider(crypto::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap_or_else(|e| panic!("TLS 1.3: {e}"))
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client {
        Some(svid) => builder
            .with_client_auth_cert(svid.chain.to_vec(), crypto::private_key_der(svid.key))
            .unwrap_or_else(|e| panic!("client SVID refused by rustls: {e}")),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("endpoint for {addr}: {e}"))
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from("meshid-ca").map_err(std::io::Error::other)?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| {
            use std::error::Error as _;
            let cause = e.source().map(|s| format!(": {s}")).unwrap_or_default();
            format!("cannot connect to the CA at {addr}: {e}{cause}")
        })
}

/// A CSR for `key` with an empty subject and no extensions (the CA decides
/// what the certificate says).
pub fn csr(key: &PrivateKey) -> Vec<u8> {
    let key_pair = key
        .key_pair()
        .unwrap_or_else(|e| panic!("key pair for the CSR: {e}"));
    rcgen::CertificateParams::default()
        .serialize_request(&key_pair)
        .unwrap_or_else(|e| panic!("CSR: {e}"))
        .der()
        .to_vec()
}
