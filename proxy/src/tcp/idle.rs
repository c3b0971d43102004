//! Copying both ways with an idle timeout: a connection that moves no byte
//! in either direction for the timeout is closed, one that streams in only
//! one direction is not.

use crate::idle::Activity;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, copy_bidirectional};

/// How a splice ended, with the bytes read from each side.
#[derive(Debug, PartialEq, Eq)]
pub struct Spliced {
    /// Bytes read from the client side (`a`).
    pub from_client: u64,
    /// Bytes read from the upstream side (`b`).
    pub from_upstream: u64,
    /// Why it ended.
    pub end: End,
}

/// Why a splice ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Both sides finished (EOF each way).
    Closed,
    /// No byte moved for the idle timeout.
    Idle,
    /// A read or write failed (reset, broken pipe...).
    Failed(io::ErrorKind),
}

/// One side of the splice: counts what it reads and marks activity.
struct Tracked<'a, T> {
    io: &'a mut T,
    activity: &'a Activity,
    read: u64,
}

/// Copies `a` ⇄ `b` until both directions end, either side fails, or no
/// byte has moved in either direction for `idle`.
pub async fn splice<A, B>(a: &mut A, b: &mut B, idle: Duration) -> Spliced
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let mut a = Tracked::new(a, &activity);
    let mut b = Tracked::new(b, &activity);
    let end = tokio::select! {
        r = copy_bidirectional(&mut a, &mut b) => {
            r.map_or_else(|e| End::Failed(e.kind()), |_| End::Closed)
        }
        () = activity.idle(idle, || false) => End::Idle,
    };
    Spliced {
        from_client: a.read,
        from_upstream: b.read,
        end,
    }
}

// === impl Tracked ===

impl<'a, T> Tracked<'a, T> {
    fn new(io: &'a mut T, activity: &'a Activity) -> Self {
        Self {
            io,
            activity,
            read: 0,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut *this.io).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            this.read += n as u64;
            this.activity.mark();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut *this.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.mark();
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
