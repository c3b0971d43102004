//! The downstream CA's TLS to its upstream on OpenSSL: a client context
//! per connection (TLS 1.3, ALPN h2, the agent SVID if given) and a
//! [`PeerCheck`] pinned to the upstream's SPIFFE ID, applied from OpenSSL's
//! verify callback.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;

use meshid_identity::openssl::{ClientContext, ContextOptions, SslStream, TlsMin, connect};
use meshid_identity::tls::{Algorithms, PeerCheck, PeerMatch};
use meshid_identity::{BundleSet, PrivateKey, SpiffeId};
use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;

/// The OpenSSL handshake to the upstream CA.
#[derive(Clone)]
pub(super) struct Handshake {
    context: Arc<ClientContext>,
    check: Arc<PeerCheck>,
}

// === impl Handshake ===

impl Handshake {
    /// A handshake that requires the server to present `ca_id` under
    /// `bundles`, with `client` (chain leaf first, key) if given. The error
    /// says what could not be set up.
    pub(super) fn new(
        ca_id: &SpiffeId,
        bundles: Arc<BundleSet>,
        client: Option<(&[CertificateDer<'static>], &PrivateKey)>,
    ) -> Result<Self, String> {
        let options = ContextOptions {
            min_version: TlsMin::Tls13,
            alpn: vec![b"h2".to_vec()],
            algorithms: Algorithms::Default,
            resumption: false,
        };
        let context = ClientContext::new(&options, client).map_err(|e| e.to_string())?;
        let check = PeerCheck::new(bundles, PeerMatch::OneOf(vec![ca_id.clone()]))
            .map_err(|e| e.to_string())?;
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
