//! Accepted Unix-socket connections that carry their peer's credentials,
//! so tonic servers (Workload API, SDS) can read them per request:
//!
//! ```text
//! Server::builder().add_service(svc).serve_with_incoming(incoming(listener)).await?;
//! // in a handler:
//! let peer: Option<&PeerInfo> = request.extensions().get::<PeerInfo>();
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tonic::transport::server::Connected;

use super::PeerInfo;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the
/// accept loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

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

/// Accepts connections forever, each with its peer's credentials. A
/// connection whose credentials cannot be read is yielded as an error (tonic
/// logs and drops it) — it is never served without them.
pub fn incoming(listener: UnixListener) -> impl Stream<Item = io::Result<UdsConnection>> {
    futures::stream::unfold(listener, |listener| async move {
        let item = match listener.accept().await {
            Ok((stream, _addr)) => UdsConnection::new(stream).map_err(|e| {
                tracing::warn!(error = %e, "dropping connection without usable peer credentials");
                io::Error::other(e)
            }),
            Err(e) => {
                tracing::warn!(error = %e, "accept on the Unix socket failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                Err(e)
            }
        };
        Some((item, listener))
    })
}
