//! Who is calling: the verified client certificate, and whether it is an
//! agent's.
//!
//! The node server serves [`TlsConnection`]s (rustls or OpenSSL); tonic
//! puts each connection's [`PeerCertificates`] into the request extensions. (tonic's own
//! `TlsConnectInfo` is only exported with its TLS features, which would
//! pull in its own rustls setup, so meshid carries its own small type.)
//!
//! A chain that verifies against the bundle only proves the CA signed it.
//! It is an agent's only if its serial is the one the CA recorded for that
//! agent ([`binding`]), as SPIRE does: a workload SVID that happens to carry
//! an agent's ID, or an agent SVID since replaced, is refused.

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

use crate::authority::serial_hex;
use crate::store::Agent;

/// What the TLS handshake established about the client.
#[derive(Debug, Clone)]
pub struct PeerCertificates {
    /// The client's address.
    pub remote_addr: Option<SocketAddr>,
    /// The client certificate chain the server's verifier accepted, if the
    /// client presented one.
    pub certs: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// A server-side TLS connection (on either TLS backend) that reports its
/// [`PeerCertificates`].
pub struct TlsConnection {
    io: Pin<Box<dyn Io>>,
    info: PeerCertificates,
}

/// What a TLS stream of either backend is to the node server.
trait Io: AsyncRead + AsyncWrite + Send {}

impl<T: AsyncRead + AsyncWrite + Send> Io for T {}

impl TlsConnection {
    /// A rustls connection; its peer certificates are the ones rustls's
    /// verifier accepted.
    pub fn rustls(tls: tokio_rustls::server::TlsStream<TcpStream>) -> Self {
        let (tcp, session) = tls.get_ref();
        let info = PeerCertificates {
            remote_addr: tcp.peer_addr().ok(),
            certs: session.peer_certificates().map(|c| Arc::new(c.to_vec())),
        };
        Self::new(tls, info)
    }

    /// A connection of another backend, whose handshake verified `info`.
    pub fn new(io: impl AsyncRead + AsyncWrite + Send + 'static, info: PeerCertificates) -> Self {
        Self {
            io: Box::pin(io),
            info,
        }
    }
}

impl std::fmt::Debug for TlsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnection")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Connected for TlsConnection {
    type ConnectInfo = PeerCertificates;

    fn connect_info(&self) -> PeerCertificates {
        self.info.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.as_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The client certificate the TLS layer verified for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSvid {
    /// The SPIFFE ID in its URI SAN.
    pub spiffe_id: SpiffeId,
    /// Its serial, lowercase hex (as [`Agent::serial`] records it).
    pub serial: String,
}

/// How a [`ClientSvid`] matches its agent's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// The agent's current SVID.
    Current,
    /// The SVID the agent last renewed from: accepted until the agent
    /// uses the renewed one.
    Previous,
}

/// The SPIFFE ID in the client certificate the TLS layer verified for this
/// request's connection; `Unauthenticated` when there is none.
pub fn caller_id<T>(req: &Request<T>) -> Result<SpiffeId, Status> {
    peer_spiffe_id(&peer_certs(req)?)
        .ok_or_else(|| Status::unauthenticated("the client certificate carries no SPIFFE ID"))
}

/// The verified client certificate of this request's connection (its ID
/// and serial); `Unauthenticated` when there is none.
pub fn client_svid<T>(req: &Request<T>) -> Result<ClientSvid, Status> {
    let certs = peer_certs(req)?;
    let spiffe_id = peer_spiffe_id(&certs)
        .ok_or_else(|| Status::unauthenticated("the client certificate carries no SPIFFE ID"))?;
    let serial = certs
        .first()
        .and_then(|leaf| serial_hex(leaf))
        .ok_or_else(|| Status::unauthenticated("the client certificate is unreadable"))?;
    Ok(ClientSvid { spiffe_id, serial })
}

/// Whether `svid` is `agent`'s current or previous SVID; `Unauthenticated`
/// otherwise (a workload SVID with the agent's ID, or one the agent has
/// replaced by renewing or attesting again).
pub fn binding(agent: &Agent, svid: &ClientSvid) -> Result<Binding, Status> {
    if svid.serial == agent.serial {
        return Ok(Binding::Current);
    }
    if agent.previous_serial.as_deref() == Some(svid.serial.as_str()) {
        return Ok(Binding::Previous);
    }
    Err(Status::unauthenticated(format!(
        "the client certificate (serial {}) is not the current SVID of agent {}: it was \
         replaced by a renewal or a new attestation, or it is not an agent SVID at all; call \
         with the agent's latest SVID, or attest again",
        svid.serial, agent.spiffe_id
    )))
}

fn peer_certs<T>(req: &Request<T>) -> Result<Arc<Vec<CertificateDer<'static>>>, Status> {
    req.extensions()
        .get::<PeerCertificates>()
        .and_then(|p| p.certs.clone())
        .ok_or_else(|| {
            Status::unauthenticated(
                "this call needs mTLS with the agent's SVID as client certificate; attest first",
            )
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn agent(serial: &str, previous: Option<&str>) -> Agent {
        Agent {
            spiffe_id: "spiffe://example.org/meshid/agent/join_token/a"
                .parse()
                .unwrap(),
            attestation_type: "join_token".into(),
            serial: serial.into(),
            previous_serial: previous.map(str::to_owned),
            expires_at: SystemTime::UNIX_EPOCH,
            banned: false,
            selectors: Vec::new(),
            tenant: String::new(),
            created_at: SystemTime::UNIX_EPOCH,
            updated_at: SystemTime::UNIX_EPOCH,
        }
    }

    fn svid(serial: &str) -> ClientSvid {
        ClientSvid {
            spiffe_id: "spiffe://example.org/meshid/agent/join_token/a"
                .parse()
                .unwrap(),
            serial: serial.into(),
        }
    }

    #[test]
    fn only_the_current_or_previous_serial_binds() {
        assert_eq!(
            binding(&agent("02", Some("01")), &svid("02")).unwrap(),
            Binding::Current
        );
        assert_eq!(
            binding(&agent("02", Some("01")), &svid("01")).unwrap(),
            Binding::Previous
        );
        let stale = binding(&agent("03", Some("02")), &svid("01")).unwrap_err();
        assert_eq!(stale.code(), tonic::Code::Unauthenticated);
        assert!(stale.message().contains("serial 01"), "{}", stale.message());
        assert!(binding(&agent("02", None), &svid("01")).is_err());
    }
}
