//! Accepted Unix-socket connections that carry their peer's credentials,
//! so tonic servers (Workload API, SDS) can read them per request. The
//! accept loop, its limits and timeouts are `meshid_runtime::uds`:
//!
//! ```text
//! Server::builder().add_service(svc).serve_with_incoming(incoming(listener)).await?;
//! // in a handler:
//! let peer: Option<&PeerInfo> = request.extensions().get::<PeerInfo>();
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use meshid_runtime::uds::{GuardedConnection, UdsListener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tonic::transport::server::Connected;

use super::PeerInfo;

/// A connected Unix stream and the credentials of the process on the other
/// end, read once when it was accepted.
#[derive(Debug)]
pub struct UdsConnection {
    stream: UnixStream,
    peer: PeerInfo,
}

// === impl UdsConnection ===

impl UdsConnection {
    /// Reads the peer's credentials of an accepted stream.
    pub fn new(stream: UnixStream) -> Result<Self, super::AttestError> {
        let peer = PeerInfo::from_stream(&stream)?;
        Ok(Self { stream, peer })
    }

    /// The peer's credentials.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &UnixStream {
        &self.stream
    }

    /// Gives back the stream.
    pub fn into_inner(self) -> UnixStream {
        self.stream
    }
}

impl Connected for UdsConnection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer
    }
}

impl AsyncRead for UdsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for UdsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Accepts connections forever under the listener's limits, each with its
/// peer's credentials. A connection whose credentials cannot be read is
/// closed (and counted) — it is never served without them.
pub fn incoming(
    listener: impl Into<UdsListener>,
) -> impl Stream<Item = io::Result<GuardedConnection<UdsConnection>>> {
    listener.into().incoming(|stream| {
        UdsConnection::new(stream).map_err(|e| {
            tracing::warn!(error = %e, "dropping connection without usable peer credentials");
            io::Error::other(e)
        })
    })
}
