//! The downstream CA's OpenSSL TLS in a build without the `openssl`
//! feature: none can be made (`tls_backend = "openssl"` is refused at
//! start-up first; [`Handshake::new`] says so too).

use std::future::Future;
use std::io;
use std::sync::Arc;

use meshid_identity::tls::BackendError;
use meshid_identity::{BundleSet, PrivateKey, SpiffeId};
use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;

/// No OpenSSL handshake exists in this build.
#[derive(Debug, Clone)]
pub(super) enum Handshake {}

impl Handshake {
    /// Always fails: this build has no OpenSSL.
    pub(super) fn new(
        _ca_id: &SpiffeId,
        _bundles: Arc<BundleSet>,
        _client: Option<(&[CertificateDer<'static>], &PrivateKey)>,
    ) -> Result<Self, String> {
        Err(BackendError::NotCompiled.to_string())
    }
}

impl meshid_runtime::tls::Handshake for Handshake {
    type Stream = TcpStream;

    fn handshake(&self, _tcp: TcpStream) -> impl Future<Output = io::Result<TcpStream>> + Send {
        let this = self;
        async move { match *this {} }
    }
}
