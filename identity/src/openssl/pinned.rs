//! The one OpenSSL client handshake for calling a meshid CA's node API:
//! the OpenSSL twin of [`pinned_client_config`](crate::tls::pinned_client_config).
//! TLS 1.3, ALPN h2, the server verified against pinned roots *and* pinned
//! to one SPIFFE ID, optionally presenting an SVID.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use super::{ClientContext, ContextOptions, OpensslError, TlsMin, connect};
use crate::tls::{Algorithms, PeerCheck, PeerMatch, VerifierError};
use crate::{BundleSet, PrivateKey, SpiffeId};

/// Why a [`PinnedHandshake`] could not be set up.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PinnedError {
    /// OpenSSL refused the client context (e.g. the client SVID's key).
    #[error("OpenSSL client context: {0}")]
    Context(#[source] OpensslError),
    /// The server check is unusable (no roots to verify against).
    #[error(transparent)]
    Peer(#[from] VerifierError),
}

/// A client handshake to a server that must present one SPIFFE ID under a
/// bundle set, for [`meshid_runtime::tls::connector`].
///
/// Each connection gets its own [`Ssl`](super::Ssl); no session is resumed.
/// A server whose SVID verifies but names another ID fails the handshake
/// with a [`HandshakeError`](super::HandshakeError) whose rejection is a
/// [`PeerNotAllowed`](crate::tls::PeerNotAllowed) naming both IDs.
#[derive(Clone)]
pub struct PinnedHandshake {
    context: Arc<ClientContext>,
    check: Arc<PeerCheck>,
}

// === impl PinnedHandshake ===

impl PinnedHandshake {
    /// A handshake that requires the server to present `server_id` under
    /// `bundles`, presenting `client` (chain leaf first, key) when given.
    pub fn new(
        server_id: &SpiffeId,
        bundles: Arc<BundleSet>,
        client: Option<(&[CertificateDer<'static>], &PrivateKey)>,
    ) -> Result<Self, PinnedError> {
        let options = ContextOptions {
            min_version: TlsMin::Tls13,
            alpn: vec![b"h2".to_vec()],
            algorithms: Algorithms::Default,
            resumption: false,
        };
        let context = ClientContext::new(&options, client).map_err(PinnedError::Context)?;
        let check = PeerCheck::new(bundles, PeerMatch::OneOf(vec![server_id.clone()]))?;
        Ok(Self {
            context: Arc::new(context),
            check: Arc::new(check),
        })
    }

    /// The server IDs this handshake accepts.
    pub fn peer(&self) -> &PeerMatch {
        self.check.peer()
    }
}

impl meshid_runtime::tls::Handshake for PinnedHandshake {
    type Stream = SslStream<TcpStream>;

    /// Fails with an [`io::Error`] wrapping the
    /// [`HandshakeError`](super::HandshakeError) (or the
    /// [`OpensslError`] if no connection could be started).
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

impl fmt::Debug for PinnedHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedHandshake")
            .field("backend", &"openssl")
            .field("peer", self.check.peer())
            .finish_non_exhaustive()
    }
}
