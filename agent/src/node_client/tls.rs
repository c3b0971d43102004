//! TLS to the CA: the shared pinned client config
//! ([`meshid_identity::tls::pinned_client_config`]: TLS 1.3, the CA verified
//! against pinned roots *and* pinned to its SPIFFE ID, so another SVID of
//! the trust domain, e.g. a workload's, is refused before anything is
//! sent), optionally with the agent SVID as client certificate.

use std::sync::Arc;

use meshid_identity::tls::{ClientCert, pinned_client_config};
use meshid_identity::{BundleSet, SpiffeId};
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
    let client = creds.map(|c| ClientCert {
        chain: &c.chain,
        key: &c.key,
    });
    pinned_client_config(ca_id, bundles, client)
        .map(Arc::new)
        .map_err(|e| CaError::Tls(e.to_string()))
}
