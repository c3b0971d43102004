//! The CA client's TLS on OpenSSL: identity's [`PinnedHandshake`] (TLS 1.3,
//! ALPN h2, the agent SVID if given, pinned to the CA's SPIFFE ID), with
//! the agent's error type.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::sync::Arc;

use meshid_identity::openssl::{HandshakeError, PinnedHandshake, SslStream};
use meshid_identity::tls::PeerNotAllowed;
use meshid_identity::{BundleSet, SpiffeId};
use tokio::net::TcpStream;

use crate::node_client::{AgentCredentials, CaError};

/// The OpenSSL handshake to the CA.
#[derive(Debug, Clone)]
pub(in crate::node_client) struct Handshake(PinnedHandshake);

// === impl Handshake ===

impl Handshake {
    /// A handshake that requires the server to present `ca_id` under
    /// `bundles`, with `creds` as client certificate if given.
    pub(in crate::node_client) fn new(
        ca_id: &SpiffeId,
        bundles: Arc<BundleSet>,
        creds: Option<&AgentCredentials>,
    ) -> Result<Self, CaError> {
        let client = creds.map(|c| (c.chain.as_slice(), &c.key));
        PinnedHandshake::new(ca_id, bundles, client)
            .map(Self)
            .map_err(|e| CaError::Tls(e.to_string()))
    }
}

impl meshid_runtime::tls::Handshake for Handshake {
    type Stream = SslStream<TcpStream>;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        self.0.handshake(tcp)
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
