//! The one client config for calling a meshid CA's node API: TLS 1.3,
//! ALPN h2, the server verified against pinned roots *and* pinned to one
//! SPIFFE ID (another SVID of the trust domain, e.g. a workload's, fails
//! the handshake before anything is sent), optionally presenting an SVID.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;

use super::{PeerMatch, SpiffeVerifier};
use crate::{BundleSet, PrivateKey, SpiffeId, crypto};

/// A client SVID to present: chain (leaf first) and its key.
#[derive(Clone, Copy)]
pub struct ClientCert<'a> {
    /// The SVID chain, leaf first.
    pub chain: &'a [CertificateDer<'static>],
    /// The leaf's private key.
    pub key: &'a PrivateKey,
}

impl std::fmt::Debug for ClientCert<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCert")
            .field("chain_len", &self.chain.len())
            .field("key", &"...")
            .finish()
    }
}

/// A rustls client config for a server that must present `server_id`
/// under `bundles`, presenting `client` when given.
///
/// A server whose SVID verifies but names another ID fails the handshake
/// with a [`PeerNotAllowed`](super::PeerNotAllowed) naming both IDs.
pub fn pinned_client_config(
    server_id: &SpiffeId,
    bundles: Arc<BundleSet>,
    client: Option<ClientCert<'_>>,
) -> Result<ClientConfig, rustls::Error> {
    let provider = crypto::provider();
    let verifier = SpiffeVerifier::builder(bundles)
        .peer(PeerMatch::OneOf(vec![server_id.clone()]))
        .provider(provider.clone())
        .build()?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client {
        Some(c) => {
            builder.with_client_auth_cert(c.chain.to_vec(), crypto::private_key_der(c.key))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}
