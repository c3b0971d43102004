//! TLS to the CA: TLS 1.3, the CA verified against pinned roots *and*
//! pinned to its SPIFFE ID (another SVID of the trust domain, e.g. a
//! workload's, is refused before anything is sent), optionally with the
//! agent SVID as client certificate.

use std::sync::Arc;

use meshid_identity::tls::{PeerMatch, SpiffeVerifier};
use meshid_identity::{BundleSet, SpiffeId, crypto};
use rustls::ClientConfig;

use super::{AgentCredentials, CaError};

/// A rustls client config for the CA that serves as `ca_id`.
///
/// A server whose SVID verifies but names another ID fails the handshake
/// with a `PeerNotAllowed` naming both IDs; [`CaError::wrong_ca_in`]
/// turns it into [`CaError::WrongCa`].
pub(super) fn client_config(
    ca_id: &SpiffeId,
    bundles: Arc<BundleSet>,
    creds: Option<&AgentCredentials>,
) -> Result<Arc<ClientConfig>, CaError> {
    let td = ca_id.trust_domain();
    if bundles.get(&td).is_none() {
        return Err(CaError::Tls(format!(
            "no trust bundle for {td}: set trust_bundle_file to the CA's root certificates"
        )));
    }
    let provider = crypto::provider();
    let verifier = SpiffeVerifier::builder(bundles)
        .peer(PeerMatch::OneOf(vec![ca_id.clone()]))
        .provider(provider.clone())
        .build()
        .map_err(|e| CaError::Tls(e.to_string()))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| CaError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match creds {
        Some(c) => builder
            .with_client_auth_cert(c.chain.clone(), crypto::private_key_der(&c.key))
            .map_err(|e| CaError::Tls(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
