//! TLS to the CA, on the configured backend, over the one dial path of
//! [`meshid_runtime::tls::connector`]:
//!
//! - rustls: the shared pinned client config
//!   ([`meshid_identity::tls::pinned_client_config`]);
//! - OpenSSL ([`openssl`], cargo feature `openssl`): a client context with
//!   the same [`PeerCheck`](meshid_identity::tls::PeerCheck) rules.
//!
//! Either way: TLS 1.3, ALPN h2, the CA verified against pinned roots *and*
//! pinned to its SPIFFE ID, so another SVID of the trust domain, e.g. a
//! workload's, is refused before anything is sent; optionally with the
//! agent SVID as client certificate.

use std::error::Error as StdError;
use std::sync::Arc;

use meshid_identity::tls::{ClientCert, PeerNotAllowed, TlsBackend, pinned_client_config};
use meshid_identity::{BundleSet, SpiffeId};
use meshid_runtime::tls::{Rustls, connector};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tonic::transport::{Channel, Endpoint};

use super::{AgentCredentials, CaError};

#[cfg(feature = "openssl")]
mod openssl;
#[cfg(not(feature = "openssl"))]
#[path = "tls/openssl_absent.rs"]
mod openssl;

/// One connection's TLS to the CA, ready to dial.
#[derive(Debug, Clone)]
pub(super) enum CaTls {
    /// rustls.
    Rustls(Rustls),
    /// OpenSSL.
    Openssl(openssl::Handshake),
}

/// Who the CA is and how to reach it over TLS.
pub(super) struct Target<'a> {
    /// The backend.
    pub backend: TlsBackend,
    /// The SPIFFE ID the CA must present.
    pub ca_id: &'a SpiffeId,
    /// The roots that authenticate the CA.
    pub bundles: Arc<BundleSet>,
    /// The TLS server name (SNI, rustls only).
    pub server_name: ServerName<'static>,
}

// === impl CaTls ===

impl CaTls {
    /// The TLS to `target`, with `creds` as client certificate if given.
    pub(super) fn new(
        target: Target<'_>,
        creds: Option<&AgentCredentials>,
    ) -> Result<Self, CaError> {
        let td = target.ca_id.trust_domain();
        if target.bundles.get(&td).is_none() {
            return Err(CaError::Tls(format!(
                "no trust bundle for {td}: set trust_bundle_file to the CA's root certificates"
            )));
        }
        match target.backend {
            TlsBackend::Rustls => {
                let config = client_config(target.ca_id, target.bundles, creds)?;
                Ok(Self::Rustls(Rustls::new(config, target.server_name)))
            }
            TlsBackend::Openssl => {
                openssl::Handshake::new(target.ca_id, target.bundles, creds).map(Self::Openssl)
            }
        }
    }

    /// Connects `endpoint` now.
    pub(super) async fn connect(
        self,
        endpoint: &Endpoint,
    ) -> Result<Channel, tonic::transport::Error> {
        match self {
            Self::Rustls(h) => endpoint.connect_with_connector(connector(h)).await,
            Self::Openssl(h) => endpoint.connect_with_connector(connector(h)).await,
        }
    }

    /// A channel to `endpoint` that connects on first use.
    pub(super) fn connect_lazy(self, endpoint: &Endpoint) -> Channel {
        match self {
            Self::Rustls(h) => endpoint.connect_with_connector_lazy(connector(h)),
            Self::Openssl(h) => endpoint.connect_with_connector_lazy(connector(h)),
        }
    }
}

/// A rustls client config for the CA that serves as `ca_id`.
///
/// A server whose SVID verifies but names another ID fails the handshake
/// with a `PeerNotAllowed` naming both IDs; [`CaError::wrong_ca_in`]
/// turns it into [`CaError::WrongCa`].
fn client_config(
    ca_id: &SpiffeId,
    bundles: Arc<BundleSet>,
    creds: Option<&AgentCredentials>,
) -> Result<Arc<ClientConfig>, CaError> {
    let client = creds.map(|c| ClientCert {
        chain: &c.chain,
        key: &c.key,
    });
    pinned_client_config(ca_id, bundles, client)
        .map(Arc::new)
        .map_err(|e| CaError::Tls(e.to_string()))
}

/// The CA-ID check failing in `e` itself (not its sources), on either
/// backend: a rustls error, or an OpenSSL handshake error.
pub(super) fn peer_not_allowed<'e>(e: &'e (dyn StdError + 'static)) -> Option<&'e PeerNotAllowed> {
    e.downcast_ref::<rustls::Error>()
        .and_then(PeerNotAllowed::in_error)
        .or_else(|| openssl::peer_not_allowed(e))
}
