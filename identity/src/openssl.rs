//! The OpenSSL TLS backend (cargo feature `openssl`).
//!
//! The same SPIFFE rules as the rustls path: every handshake checks the
//! peer with a [`PeerCheck`](crate::tls::PeerCheck) from a per-connection
//! verify callback that ignores OpenSSL's own chain verdict (OpenSSL has
//! no trust store here) and decides once, at the leaf.
//!
//! - [`policy`]: the algorithm lists ([`Algorithms`](crate::tls::Algorithms)).
//! - [`fips`]: OpenSSL's FIPS provider, enabled for the process or refused.
//! - [`ServerContext`], [`ClientContext`]: contexts built from an SVID
//!   and [`ContextOptions`]; each `ssl()` makes one connection's [`Ssl`]
//!   and the [`PeerSlot`] its verdict lands in.
//! - [`accept`], [`connect`]: tokio-openssl handshakes that fail with a
//!   [`HandshakeError`] carrying the same reason labels as the rustls path.
//! - [`peer_chain`]: the peer's certificates after a handshake, leaf first.
//! - [`PinnedHandshake`]: the CA-client handshake (TLS 1.3, h2, pinned to
//!   one server ID), the twin of [`pinned_client_config`](crate::tls::pinned_client_config).

mod context;
pub mod fips;
mod handshake;
mod pinned;
pub mod policy;
mod session;
mod verify;

use openssl::error::ErrorStack;

pub use context::{ClientAuth, ClientContext, ContextOptions, ServerContext, TlsMin};
pub use handshake::{HandshakeError, accept, connect, peer_chain, reason_of};
pub use pinned::{PinnedError, PinnedHandshake};
pub use verify::PeerSlot;

pub use ::openssl::ssl::{Ssl, SslRef};
pub use tokio_openssl::SslStream;

/// OpenSSL's version text, e.g. `OpenSSL 3.0.19 27 Jan 2026`.
pub fn version() -> &'static str {
    ::openssl::version::version()
}

/// An OpenSSL call failed, or its input was unusable, while building a
/// context or a connection.
#[derive(Debug, Clone, thiserror::Error)]
pub struct OpensslError {
    what: &'static str,
    #[source]
    source: Option<ErrorStack>,
}

impl OpensslError {
    /// Wraps `source`, naming the step that failed (`"load the private key"`).
    pub(crate) fn new(what: &'static str) -> impl FnOnce(ErrorStack) -> Self {
        move |source| Self {
            what,
            source: Some(source),
        }
    }

    /// A step refused before OpenSSL was called (e.g. an empty chain).
    pub(crate) fn invalid(what: &'static str) -> Self {
        Self { what, source: None }
    }

    /// The step that failed.
    pub fn what(&self) -> &'static str {
        self.what
    }
}

impl std::fmt::Display for OpensslError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenSSL could not {}", self.what)?;
        match &self.source {
            Some(e) => write!(f, ": {e}"),
            None => Ok(()),
        }
    }
}
