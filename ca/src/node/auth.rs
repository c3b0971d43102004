//! Who is calling: the SPIFFE ID of the verified client certificate.
//!
//! The node server serves [`TlsConnection`]s; tonic puts each connection's
//! [`PeerCertificates`] into the request extensions. (tonic's own
//! `TlsConnectInfo` is only exported with its TLS features, which would
//! pull in its own rustls setup, so meshid carries its own small type.)

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use meshid_identity::SpiffeId;
use meshid_identity::tls::peer_spiffe_id;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::Connected;
use tonic::{Request, Status};

/// What the TLS handshake established about the client.
#[derive(Debug, Clone)]
pub struct PeerCertificates {
    /// The client's address.
    pub remote_addr: Option<SocketAddr>,
    /// The client certificate chain the server's verifier accepted, if the
    /// client presented one.
    pub certs: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// A server-side TLS connection that reports its [`PeerCertificates`].
#[derive(Debug)]
pub struct TlsConnection(pub tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for TlsConnection {
    type ConnectInfo = PeerCertificates;

    fn connect_info(&self) -> PeerCertificates {
        let (tcp, session) = self.0.get_ref();
        PeerCertificates {
            remote_addr: tcp.peer_addr().ok(),
            certs: session.peer_certificates().map(|c| Arc::new(c.to_vec())),
        }
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// The SPIFFE ID in the client certificate the TLS layer verified for this
/// request's connection; `Unauthenticated` when there is none.
pub fn caller_id<T>(req: &Request<T>) -> Result<SpiffeId, Status> {
    let certs = req
        .extensions()
        .get::<PeerCertificates>()
        .and_then(|p| p.certs.clone())
        .ok_or_else(|| {
            Status::unauthenticated(
                "this call needs mTLS with the agent's SVID as client certificate; attest first",
            )
        })?;
    peer_spiffe_id(&certs)
        .ok_or_else(|| Status::unauthenticated("the client certificate carries no SPIFFE ID"))
}
