//! The node API's OpenSSL TLS in a build without the `openssl` feature:
//! none can be made (`tls_backend = "openssl"` is refused at start-up
//! first; [`Acceptor::new`] says so too).

use std::io;

use meshid_identity::tls::BackendError;
use tokio::net::TcpStream;

use crate::authority::CurrentAuthority;
use crate::node::TlsConnection;

/// No OpenSSL acceptor exists in this build.
#[derive(Debug)]
pub enum Acceptor {}

impl Acceptor {
    /// Always fails: this build has no OpenSSL.
    pub fn new(_authority: CurrentAuthority) -> Result<Self, rustls::Error> {
        Err(rustls::Error::General(
            BackendError::NotCompiled.to_string(),
        ))
    }

    pub async fn accept(&self, _tcp: TcpStream) -> io::Result<TlsConnection> {
        match *self {}
    }
}
