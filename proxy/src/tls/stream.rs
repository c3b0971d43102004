//! Established TLS connections, whichever backend made the handshake:
//! [`ServerTls`] (inbound) and [`ClientTls`] (outbound), with ALPN and the
//! peer's verified identity.

use meshid_identity::SpiffeId;
use meshid_identity::tls::peer_spiffe_id;
use rustls::pki_types::CertificateDer;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// An inbound TLS connection.
#[derive(Debug)]
pub enum ServerTls {
    /// Made by rustls.
    Rustls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Made by OpenSSL.
    #[cfg(feature = "openssl")]
    Openssl(Box<tokio_openssl::SslStream<TcpStream>>),
}

/// An outbound TLS connection.
#[derive(Debug)]
pub enum ClientTls {
    /// Made by rustls.
    Rustls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Made by OpenSSL.
    #[cfg(feature = "openssl")]
    Openssl(Box<tokio_openssl::SslStream<TcpStream>>),
}

/// Runs `$body` with `$s` bound to the stream of whichever variant
/// `$value` is (the one place the backends' variants are listed).
macro_rules! each {
    ($value:expr, $s:ident => $body:expr) => {
        match $value {
            Self::Rustls($s) => $body,
            #[cfg(feature = "openssl")]
            Self::Openssl($s) => $body,
        }
    };
}

// === impl ServerTls ===

impl ServerTls {
    /// The ALPN protocol chosen, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match self {
            Self::Rustls(s) => s.get_ref().1.alpn_protocol(),
            #[cfg(feature = "openssl")]
            Self::Openssl(s) => s.ssl().selected_alpn_protocol(),
        }
    }

    /// The client's certificate chain, leaf first (empty if none).
    pub fn peer_chain(&self) -> Vec<CertificateDer<'static>> {
        match self {
            Self::Rustls(s) => owned(s.get_ref().1.peer_certificates()),
            #[cfg(feature = "openssl")]
            Self::Openssl(s) => meshid_identity::openssl::peer_chain(s.ssl()),
        }
    }

    /// The client's SPIFFE ID (verified during the handshake). Reads the
    /// leaf only: this runs once per inbound connection.
    pub fn peer_id(&self) -> Option<SpiffeId> {
        match self {
            Self::Rustls(s) => s.get_ref().1.peer_certificates().and_then(peer_spiffe_id),
            #[cfg(feature = "openssl")]
            Self::Openssl(s) => {
                let leaf = s.ssl().peer_certificate()?.to_der().ok()?;
                peer_spiffe_id(&[CertificateDer::from(leaf)])
            }
        }
    }
}

impl From<tokio_rustls::server::TlsStream<TcpStream>> for ServerTls {
    fn from(s: tokio_rustls::server::TlsStream<TcpStream>) -> Self {
        Self::Rustls(Box::new(s))
    }
}

#[cfg(feature = "openssl")]
impl From<tokio_openssl::SslStream<TcpStream>> for ServerTls {
    fn from(s: tokio_openssl::SslStream<TcpStream>) -> Self {
        Self::Openssl(Box::new(s))
    }
}

// === impl ClientTls ===

impl ClientTls {
    /// The ALPN protocol chosen, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match self {
            Self::Rustls(s) => s.get_ref().1.alpn_protocol(),
            #[cfg(feature = "openssl")]
            Self::Openssl(s) => s.ssl().selected_alpn_protocol(),
        }
    }

    /// The server's certificate chain, leaf first.
    pub fn peer_chain(&self) -> Vec<CertificateDer<'static>> {
        match self {
            Self::Rustls(s) => owned(s.get_ref().1.peer_certificates()),
            #[cfg(feature = "openssl")]
            Self::Openssl(s) => meshid_identity::openssl::peer_chain(s.ssl()),
        }
    }

    /// True if the session was resumed (no full handshake).
    pub fn resumed(&self) -> bool {
        match self {
            Self::Rustls(s) => {
                s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
            }
            #[cfg(feature = "openssl")]
            Self::Openssl(s) => s.ssl().session_reused(),
        }
    }
}

impl From<tokio_rustls::client::TlsStream<TcpStream>> for ClientTls {
    fn from(s: tokio_rustls::client::TlsStream<TcpStream>) -> Self {
        Self::Rustls(Box::new(s))
    }
}

#[cfg(feature = "openssl")]
impl From<tokio_openssl::SslStream<TcpStream>> for ClientTls {
    fn from(s: tokio_openssl::SslStream<TcpStream>) -> Self {
        Self::Openssl(Box::new(s))
    }
}

fn owned(certs: Option<&[CertificateDer<'_>]>) -> Vec<CertificateDer<'static>> {
    certs
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect()
}

/// AsyncRead + AsyncWrite by delegating to the backend's stream.
macro_rules! delegate_io {
    ($t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                each!(self.get_mut(), s => Pin::new(&mut **s).poll_read(cx, buf))
            }
        }

        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                each!(self.get_mut(), s => Pin::new(&mut **s).poll_write(cx, buf))
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                each!(self.get_mut(), s => Pin::new(&mut **s).poll_flush(cx))
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                each!(self.get_mut(), s => Pin::new(&mut **s).poll_shutdown(cx))
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                each!(self.get_mut(), s => Pin::new(&mut **s).poll_write_vectored(cx, bufs))
            }

            fn is_write_vectored(&self) -> bool {
                each!(self, s => s.is_write_vectored())
            }
        }
    };
}

delegate_io!(ServerTls);
delegate_io!(ClientTls);
