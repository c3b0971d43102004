//! A node API client over rustls with the SPIFFE server verifier.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use meshid_identity::crypto;
use meshid_identity::tls::SpiffeVerifier;
use meshid_identity::{BundleSet, PrivateKey, TrustBundle};
use meshid_proto::ca::node_client::NodeClient;
use rustls::pki_types::{CertificateDer, ServerName};
use tonic::transport::{Channel, Endpoint};

/// Connects to the CA at `addr`, trusting `bundle`, optionally with a
/// client SVID (chain + key).
pub async fn connect(
    addr: SocketAddr,
    bundle: TrustBundle,
    client: Option<(Vec<CertificateDer<'static>>, &PrivateKey)>,
) -> anyhow::Result<NodeClient<Channel>> {
    let bundles: BundleSet = [bundle].into_iter().collect();
    let verifier = SpiffeVerifier::builder(Arc::new(bundles)).build()?;
    let builder = rustls::ClientConfig::builder_with_provider(crypto::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, crypto::private_key_der(key))?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from("meshid-ca").map_err(io::Error::other)?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, io::Error>(TokioIo::new(tls))
            }
        }))
        .await?;
    Ok(NodeClient::new(channel)
        .max_decoding_message_size(meshid_proto::MAX_MESSAGE_SIZE)
        .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE))
}
