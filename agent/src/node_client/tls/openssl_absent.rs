//! The CA client's OpenSSL TLS in a build without the `openssl` feature:
//! none can be made (`tls_backend = "openssl"` is refused at start-up
//! first; [`Handshake::new`] says so too).

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::sync::Arc;

use meshid_identity::tls::{BackendError, PeerNotAllowed};
use meshid_identity::{BundleSet, SpiffeId};
use tokio::net::TcpStream;

use crate::node_client::{AgentCredentials, CaError};

/// No OpenSSL handshake exists in this build.
#[derive(Debug, Clone)]
pub(in crate::node_client) enum Handshake {}

impl Handshake {
    /// Always fails: this build has no OpenSSL.
    pub(in crate::node_client) fn new(
        _ca_id: &SpiffeId,
        _bundles: Arc<BundleSet>,
        _creds: Option<&AgentCredentials>,
    ) -> Result<Self, CaError> {
        Err(CaError::Tls(BackendError::NotCompiled.to_string()))
    }
}

impl meshid_runtime::tls::Handshake for Handshake {
    type Stream = TcpStream;

    fn handshake(&self, _tcp: TcpStream) -> impl Future<Output = io::Result<TcpStream>> + Send {
        let this = self;
        async move { match *this {} }
    }
}

/// Nothing to find: no OpenSSL errors exist in this build.
pub(in crate::node_client) fn peer_not_allowed<'e>(
    _e: &'e (dyn StdError + 'static),
) -> Option<&'e PeerNotAllowed> {
    None
}
