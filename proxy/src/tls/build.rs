//! The TLS configs of one identity on the configured backend, and the
//! handshakes made with them.

#[cfg(feature = "openssl")]
use super::openssl::OpensslConfigs;
use super::rustls::RustlsConfigs;
use super::stream::{ClientTls, ServerTls};
use crate::config::TlsVersion;
use crate::identity::Identity;
use meshid_identity::tls::{Algorithms, PeerMatch, TlsBackend, VerifierError};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

/// ALPN protocol id of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol id of HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// How one outbound listener talks TLS to its upstream.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Which server SPIFFE IDs are accepted.
    pub peer: PeerMatch,
    /// ALPN protocols offered, most preferred first.
    pub alpn: Vec<Vec<u8>>,
    /// Also build a variant offering `h2` first, used for HTTP/2 requests
    /// (so a request keeps its HTTP version from sidecar to sidecar).
    pub h2: bool,
    /// Allow TLS session resumption.
    pub resumption: bool,
}

/// The TLS settings every listener shares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Which TLS library makes the handshakes.
    pub backend: TlsBackend,
    /// Lowest TLS version accepted and offered.
    pub min_version: TlsVersion,
    /// Default or FIPS-approved cipher suites, groups and signatures.
    pub algorithms: Algorithms,
}

/// Why configs could not be built from an identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// rustls refused the certificate, key or settings.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The peer verifier could not be built (no bundle, no accepted ID).
    #[error(transparent)]
    Verifier(#[from] VerifierError),
    /// OpenSSL refused the certificate, key or settings.
    #[error("OpenSSL: {0}")]
    Openssl(String),
    /// This build has no OpenSSL backend.
    #[error(
        "tls_backend = \"openssl\" needs a meshid built with the OpenSSL backend (cargo build --features openssl)"
    )]
    NotCompiled,
}

/// Server config for inbound listeners and one client config per outbound
/// listener, all built from the same identity on one backend.
pub struct TlsConfigs {
    /// The identity these configs present.
    pub identity: Arc<Identity>,
    backend: Backend,
}

/// The configs of one backend.
enum Backend {
    Rustls(RustlsConfigs),
    #[cfg(feature = "openssl")]
    Openssl(OpensslConfigs),
}

/// The error for an outbound listener index without a client config.
pub(super) fn no_client(index: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no TLS client config for outbound listener {index}"),
    )
}

// === impl TlsConfigs ===

impl TlsConfigs {
    /// Builds every config for `id` with `opts`; `clients` lists one client
    /// profile per outbound listener, in order.
    pub fn build(
        id: &Identity,
        opts: &TlsOptions,
        clients: &[ClientSettings],
    ) -> Result<Self, BuildError> {
        Ok(Self {
            identity: Arc::new(id.clone()),
            backend: Backend::build(id, opts, clients)?,
        })
    }

    /// The backend these configs use.
    pub fn backend(&self) -> TlsBackend {
        match &self.backend {
            Backend::Rustls(_) => TlsBackend::Rustls,
            #[cfg(feature = "openssl")]
            Backend::Openssl(_) => TlsBackend::Openssl,
        }
    }

    /// The rustls configs, if that is the backend.
    pub fn rustls(&self) -> Option<&RustlsConfigs> {
        match &self.backend {
            Backend::Rustls(r) => Some(r),
            #[cfg(feature = "openssl")]
            Backend::Openssl(_) => None,
        }
    }

    /// Server handshake on `tcp` (inbound): requires and verifies a client
    /// SVID. Unbounded: the caller applies its timeout.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<ServerTls> {
        match &self.backend {
            Backend::Rustls(r) => r.accept(tcp).await.map(ServerTls::from),
            #[cfg(feature = "openssl")]
            Backend::Openssl(o) => o.accept(tcp).await.map(ServerTls::from),
        }
    }

    /// Client handshake to `addr` on `tcp` with the client config of
    /// outbound listener `index` (its HTTP/2-first variant when `h2`).
    /// Unbounded: the caller applies its timeout.
    pub async fn connect(
        &self,
        (index, h2): (usize, bool),
        addr: SocketAddr,
        tcp: TcpStream,
    ) -> io::Result<ClientTls> {
        match &self.backend {
            Backend::Rustls(r) => r.connect((index, h2), addr, tcp).await.map(ClientTls::from),
            #[cfg(feature = "openssl")]
            Backend::Openssl(o) => o.connect((index, h2), addr, tcp).await.map(ClientTls::from),
        }
    }
}

impl fmt::Debug for TlsConfigs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfigs")
            .field("identity", &self.identity)
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

// === impl Backend ===

impl Backend {
    #[cfg(feature = "openssl")]
    fn build(
        id: &Identity,
        opts: &TlsOptions,
        clients: &[ClientSettings],
    ) -> Result<Self, BuildError> {
        Ok(match opts.backend {
            TlsBackend::Openssl => Self::Openssl(OpensslConfigs::build(id, opts, clients)?),
            _ => Self::Rustls(RustlsConfigs::build(id, opts, clients)?),
        })
    }

    #[cfg(not(feature = "openssl"))]
    fn build(
        id: &Identity,
        opts: &TlsOptions,
        clients: &[ClientSettings],
    ) -> Result<Self, BuildError> {
        match opts.backend {
            TlsBackend::Openssl => Err(BuildError::NotCompiled),
            _ => Ok(Self::Rustls(RustlsConfigs::build(id, opts, clients)?)),
        }
    }
}
