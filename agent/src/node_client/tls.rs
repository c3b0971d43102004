//! TLS to the CA: TLS 1.3, the CA verified as a SPIFFE ID in its trust
//! domain against pinned roots, optionally with the agent SVID as client
//! certificate.

use std::sync::Arc;

use meshid_identity::tls::{PeerMatch, SpiffeServerVerifier};
use meshid_identity::{BundleSet, TrustDomain};
use rustls::ClientConfig;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{AgentCredentials, CaError};

/// A rustls client config for the CA at `trust_domain`.
pub(super) fn client_config(
    trust_domain: &TrustDomain,
    bundles: Arc<BundleSet>,
    creds: Option<&AgentCredentials>,
) -> Result<Arc<ClientConfig>, CaError> {
    if bundles.get(trust_domain).is_none() {
        return Err(CaError::Tls(format!(
            "no trust bundle for {trust_domain}: set trust_bundle_file to the CA's root certificates"
        )));
    }
    let verifier = SpiffeServerVerifier::new(bundles, PeerMatch::TrustDomain(trust_domain.clone()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| CaError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match creds {
        Some(c) => {
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key.pkcs8_der().to_vec()));
            builder
                .with_client_auth_cert(c.chain.clone(), key)
                .map_err(|e| CaError::Tls(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
