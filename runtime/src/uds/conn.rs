//! One admitted connection: authority rewrite, stream tracking, timeouts.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::Connected;

use super::streams::{ServerFrames, StreamTracker};
use super::{ListenerMetrics, Permit, UdsLimits};
use crate::authority::{AuthorityRewriter, ClientEvent};

/// A connection admitted by [`UdsListener::incoming`](super::UdsListener::incoming); see the
/// [module docs](super). Reads return an error (and the server closes the
/// connection) when a timeout expires or the client's frames cannot be
/// rewritten.
pub struct GuardedConnection<S> {
    inner: S,
    rewriter: AuthorityRewriter,
    rewritten_seen: u64,
    pending: BytesMut,
    streams: StreamTracker,
    server_frames: ServerFrames,
    phase: Phase,
    handshake_done: bool,
    timer: Pin<Box<Sleep>>,
    expired: Option<&'static str>,
    limits: UdsLimits,
    metrics: ListenerMetrics,
    _permit: Permit,
}

/// What the connection's one timer measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Until the first request's headers are complete.
    Handshake,
    /// At least one stream open: no timer.
    Active,
    /// No stream open since the timer was set.
    Idle,
}

// === impl GuardedConnection ===

impl<S> GuardedConnection<S> {
    pub(crate) fn new(
        inner: S,
        permit: Permit,
        limits: UdsLimits,
        metrics: ListenerMetrics,
    ) -> Self {
        metrics.opened();
        Self {
            inner,
            rewriter: AuthorityRewriter::new(),
            rewritten_seen: 0,
            pending: BytesMut::new(),
            streams: StreamTracker::default(),
            server_frames: ServerFrames::default(),
            phase: Phase::Handshake,
            handshake_done: false,
            timer: Box::pin(tokio::time::sleep(limits.handshake_timeout)),
            expired: None,
            limits,
            metrics,
            _permit: permit,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Moves between phases after streams opened or ended, re-arming the
    /// idle timer, and checks the timer (registering `cx` for its expiry).
    fn update(&mut self, cx: &mut Context<'_>) {
        let next = if self.streams.active() > 0 {
            Phase::Active
        } else if self.handshake_done {
            Phase::Idle
        } else {
            Phase::Handshake
        };
        if next == Phase::Idle && self.phase != Phase::Idle {
            self.timer
                .as_mut()
                .reset(Instant::now() + self.limits.idle_timeout);
        }
        self.phase = next;
        if self.phase != Phase::Active
            && self.expired.is_none()
            && self.timer.as_mut().poll(cx).is_ready()
        {
            let reason = match self.phase {
                Phase::Handshake => "handshake",
                _ => "idle",
            };
            self.metrics.timed_out(reason);
            self.expired = Some(reason);
            cx.waker().wake_by_ref();
        }
    }

    /// Rewrites `read` (just read from the client) into `pending`.
    fn feed(&mut self, read: &[u8]) -> io::Result<()> {
        self.rewriter
            .feed(read, &mut self.pending)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let events: Vec<ClientEvent> = self.rewriter.drain_events().collect();
        for event in events {
            if matches!(event, ClientEvent::Headers(_)) {
                // The first request arrived: handshake done.
                self.handshake_done = true;
            }
            self.streams.on_client(event).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "too many HTTP/2 streams open on one connection",
                )
            })?;
        }
        let rewritten = self.rewriter.rewritten();
        if rewritten > self.rewritten_seen {
            self.metrics
                .authority_rewritten(rewritten - self.rewritten_seen);
            self.rewritten_seen = rewritten;
        }
        Ok(())
    }

    fn expired_error(reason: &'static str) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("Unix-socket connection closed: {reason} timeout"),
        )
    }
}

impl<S> std::fmt::Debug for GuardedConnection<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedConnection")
            .field("phase", &self.phase)
            .field("streams", &self.streams.active())
            .field("uid", &self._permit.uid())
            .finish_non_exhaustive()
    }
}

impl<S> Drop for GuardedConnection<S> {
    fn drop(&mut self) {
        self.metrics.closed();
    }
}

impl<S: Connected> Connected for GuardedConnection<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedConnection<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(reason) = this.expired {
                return Poll::Ready(Err(Self::expired_error(reason)));
            }
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            // Read into the caller's buffer (no per-connection buffer while
            // idle), rewrite from there into `pending`, then hand that out.
            let before = buf.filled().len();
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {
                    if buf.filled().len() == before {
                        return Poll::Ready(Ok(())); // end of stream
                    }
                    let fed = this.feed(&buf.filled()[before..]);
                    buf.set_filled(before);
                    fed?;
                    this.update(cx);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    this.update(cx);
                    if let Some(reason) = this.expired {
                        return Poll::Ready(Err(Self::expired_error(reason)));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedConnection<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            this.server_frames
                .scan(&buf[..n.min(buf.len())], &mut this.streams);
        }
        this.update(cx);
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(mut n)) = res {
            for b in bufs {
                if n == 0 {
                    break;
                }
                let k = n.min(b.len());
                this.server_frames.scan(&b[..k], &mut this.streams);
                n -= k;
            }
        }
        this.update(cx);
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
