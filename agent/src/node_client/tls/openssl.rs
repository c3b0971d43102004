//! The CA client's TLS on OpenSSL: a client context per connection setup
//! (TLS 1.3, ALPN h2, the agent SVID if given) and a
//! [`PeerCheck`] pinned to the CA's SPIFFE ID, applied from OpenSSL's
//! verify callback.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;

use meshid_identity::openssl::{
    ClientContext, ContextOptions, HandshakeError, SslStream, TlsMin, connect,
};
use meshid_identity::tls::{Algorithms, PeerCheck, PeerMatch, PeerNotAllowed};
use meshid_identity::{BundleSet, SpiffeId};
use tokio::net::TcpStream;

use crate::node_client::{AgentCredentials, CaError};

/// The OpenSSL handshake to the CA.
#[derive(Clone)]
pub(in crate::node_client) struct Handshake {
    context: Arc<ClientContext>,
    check: Arc<PeerCheck>,
}

// === impl Handshake ===

impl Handshake {
    /// A handshake that requires the server to present `ca_id` under
    /// `bundles`, with `creds` as client certificate if given.
    pub(in crate::node_client) fn new(
        ca_id: &SpiffeId,
        bundles: Arc<BundleSet>,
        creds: Option<&AgentCredentials>,
    ) -> Result<Self, CaError> {
        let options = ContextOptions {
            min_version: TlsMin::Tls13,
            alpn: vec![b"h2".to_vec()],
            algorithms: Algorithms::Default,
            resumption: false,
        };
        let client = creds.map(|c| (c.chain.as_slice(), &c.key));
        let context = ClientContext::new(&options, client)
            .map_err(|e| CaError::Tls(format!("OpenSSL client context: {e}")))?;
        let check = PeerCheck::new(bundles, PeerMatch::OneOf(vec![ca_id.clone()]))
            .map_err(|e| CaError::Tls(e.to_string()))?;
        Ok(Self {
            context: Arc::new(context),
            check: Arc::new(check),
        })
    }
}

impl meshid_runtime::tls::Handshake for Handshake {
    type Stream = SslStream<TcpStream>;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        let this = self.clone();
        async move {
            let key = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            let (ssl, slot) = this
                .context
                .ssl(Arc::clone(&this.check), &key)
                .map_err(io::Error::other)?;
            connect(ssl, &slot, tcp).await.map_err(io::Error::from)
        }
    }
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("backend", &"openssl")
            .field("peer", self.check.peer())
            .finish()
    }
}

/// The CA-ID check failing in `e`, if `e` is an OpenSSL handshake error.
pub(in crate::node_client) fn peer_not_allowed<'e>(
    e: &'e (dyn StdError + 'static),
) -> Option<&'e PeerNotAllowed> {
    e.downcast_ref::<HandshakeError>()
        .and_then(|h| h.rejection.as_ref())
        .and_then(|r| r.not_allowed())
}
