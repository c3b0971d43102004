//! Upstream connector: always dials one fixed address, in plaintext
//! (inbound → app) or mTLS (outbound → peer proxy).

use crate::metrics::{Metrics, OUTBOUND};
use crate::tls::{
    ClientTls, TlsStore, build::ALPN_H2, handshake_error_reason, is_handshake_error,
    peer_not_allowed,
};
use hyper_util::rt::TokioIo;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// Connect + handshake timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the upstream.
#[derive(Clone, Debug)]
pub enum Upstream {
    /// Plain TCP to the local application.
    Plain(SocketAddr),
    /// mTLS to a peer proxy with client config `index` of the [`TlsStore`].
    Tls {
        /// The peer's address.
        addr: SocketAddr,
        /// Which client config (outbound listener index).
        index: usize,
        /// Current TLS configs.
        tls: TlsStore,
        /// Handshake counters.
        metrics: Metrics,
    },
}

/// A connected upstream stream.
#[derive(Debug)]
pub enum UpstreamIo {
    /// Plain TCP.
    Plain(TokioIo<TcpStream>),
    /// mTLS; `h2` is true if ALPN chose HTTP/2.
    Tls(TokioIo<ClientTls>, bool),
}

// === impl Upstream ===

impl Upstream {
    /// The address dialed.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::Plain(a) | Self::Tls { addr: a, .. } => *a,
        }
    }

    /// Dials the upstream: TCP (no delay), then mTLS if configured,
    /// offering ALPN `h2` first when `h2` is set (else `http/1.1` only).
    pub async fn connect(&self, h2: bool) -> io::Result<UpstreamIo> {
        match self {
            Self::Plain(addr) => Ok(UpstreamIo::Plain(TokioIo::new(dial(*addr).await?))),
            Self::Tls {
                addr,
                index,
                tls,
                metrics,
            } => {
                let tls_stream = connect_tls(*addr, *index, h2, tls, metrics).await?;
                let h2 = tls_stream.alpn_protocol() == Some(ALPN_H2);
                Ok(UpstreamIo::Tls(TokioIo::new(tls_stream), h2))
            }
        }
    }
}

/// Why an upstream connection could not be opened, for the log, the
/// access log and the 502 body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectFailure {
    /// Stable label: `peer_id_mismatch`, another TLS handshake reason (see
    /// [`handshake_error_reason`]), or `connect_failed`.
    pub reason: &'static str,
    /// One line for operators and the local application.
    pub message: String,
}

// === impl ConnectFailure ===

impl ConnectFailure {
    /// Classifies `e` from connecting to `addr`, where `expected` names the
    /// server identity required (SPIFFE ID or trust domain), and logs it.
    pub fn new(e: &io::Error, addr: SocketAddr, expected: &str) -> Self {
        if let Some(presented) = peer_not_allowed(e) {
            tracing::warn!(
                upstream = %addr,
                expected,
                presented = presented.as_str(),
                "upstream presented the wrong SPIFFE ID; refusing the connection"
            );
            return Self {
                reason: "peer_id_mismatch",
                message: format!(
                    "upstream {addr} presented {}, expected {expected}",
                    presented.as_str()
                ),
            };
        }
        let is_tls = is_handshake_error(e);
        let reason = if is_tls {
            handshake_error_reason(e)
        } else {
            "connect_failed"
        };
        tracing::warn!(upstream = %addr, expected, reason, "cannot open the upstream connection: {e}");
        let what = if is_tls {
            "TLS handshake failed"
        } else {
            "cannot connect"
        };
        Self {
            reason,
            message: format!("upstream {addr}: {what} ({reason})"),
        }
    }
}

/// TCP connect with `TCP_NODELAY` and a timeout.
pub async fn dial(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {addr} timed out"),
            )
        })??;
    s.set_nodelay(true)?;
    Ok(s)
}

/// TCP connect + mTLS handshake with the latest client config `index`
/// (its HTTP/2-first variant when `h2`).
pub async fn connect_tls(
    addr: SocketAddr,
    index: usize,
    h2: bool,
    tls: &TlsStore,
    metrics: &Metrics,
) -> io::Result<ClientTls> {
    let cfg = tls
        .current()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no identity loaded yet"))?;
    let tcp = dial(addr).await?;
    match tokio::time::timeout(CONNECT_TIMEOUT, cfg.connect((index, h2), addr, tcp)).await {
        Ok(Ok(s)) => {
            metrics.handshake(OUTBOUND);
            Ok(s)
        }
        Ok(Err(e)) => {
            metrics.tls_error(OUTBOUND, handshake_error_reason(&e));
            Err(e)
        }
        Err(_) => {
            metrics.tls_error(OUTBOUND, "timeout");
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            ))
        }
    }
}

// === impl UpstreamIo ===

impl UpstreamIo {
    /// True if ALPN chose HTTP/2 (never for plaintext).
    pub fn is_h2(&self) -> bool {
        matches!(self, Self::Tls(_, true))
    }
}

impl hyper::rt::Read for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s, _) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s, _) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s, _) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s, _) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s, _) => s.is_write_vectored(),
        }
    }
}
