//! Upstream HTTP connections of one listener.
//!
//! HTTP/1.1: a stack of idle connections (most recently used first); a
//! connection goes back on it when its response body has been read to the
//! end ([`UpstreamBody`]), so checkout and return are a lock and a push or
//! pop. HTTP/2: one shared multiplexed connection, reopened when it closes.
//! If the peer does not accept `h2` (ALPN), HTTP/2 requests fall back to
//! HTTP/1.1 connections.

use crate::connect::{Upstream, UpstreamIo};
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Idle HTTP/1.1 connections kept per listener and worker thread.
const MAX_IDLE: usize = 256;
/// Idle connections older than this are closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often idle connections are checked for age and closure.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Sends HTTP/1.1 requests on one upstream connection.
pub type H1 = http1::SendRequest<Incoming>;
/// Sends HTTP/2 requests on one upstream connection.
pub type H2 = http2::SendRequest<Incoming>;

/// An upstream connection ready for a request.
#[derive(Debug)]
pub enum Lease {
    /// HTTP/1.1 (one request at a time).
    H1(H1),
    /// HTTP/2 (shared).
    H2(H2),
}

/// The upstream connections of one listener.
#[derive(Debug)]
pub struct Pool {
    upstream: Upstream,
    reuse: bool,
    idle: Mutex<Vec<(H1, Instant)>>,
    h2: Mutex<Option<H2>>,
    /// Serializes opening the shared HTTP/2 connection.
    h2_dial: tokio::sync::Mutex<()>,
    /// The peer answered an `h2` offer with HTTP/1.1.
    no_h2: AtomicBool,
}

/// A response body from upstream. For HTTP/1.1 it carries the connection
/// and returns it to its pool once the body has been read to the end.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Incoming,
    conn: Option<(H1, Arc<Pool>)>,
}

// === impl Pool ===

impl Pool {
    /// A pool dialing `upstream`. Without `reuse`, every request opens a
    /// new connection (one handshake per request).
    pub fn new(upstream: Upstream, reuse: bool) -> Self {
        Self {
            upstream,
            reuse,
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
            h2_dial: tokio::sync::Mutex::new(()),
            no_h2: AtomicBool::new(false),
        }
    }

    /// Closes idle connections past their age every 30 s while the pool
    /// lives (nothing to do without reuse). Call from within the runtime
    /// that serves the pool.
    pub fn spawn_sweeper(self: &Arc<Self>) {
        if !self.reuse {
            return;
        }
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else {
                    return;
                };
                pool.sweep(Instant::now());
            }
        });
    }

    /// Drops idle connections that are closed or older than the idle timeout.
    fn sweep(&self, now: Instant) {
        if let Ok(mut idle) = self.idle.lock() {
            retain_fresh(&mut idle, now);
        }
    }

    /// An HTTP/1.1 connection: idle or new.
    pub async fn h1(&self) -> io::Result<H1> {
        if let Some(tx) = self.take_idle() {
            return Ok(tx);
        }
        self.dial_h1().await
    }

    /// A connection for an HTTP/2 request: the shared HTTP/2 connection, or
    /// HTTP/1.1 if the peer does not speak HTTP/2.
    pub async fn h2(&self) -> io::Result<Lease> {
        if self.no_h2.load(Ordering::Relaxed) {
            return self.h1().await.map(Lease::H1);
        }
        if let Some(tx) = self.shared_h2() {
            return Ok(Lease::H2(tx));
        }
        let _dialing = self.h2_dial.lock().await;
        if let Some(tx) = self.shared_h2() {
            return Ok(Lease::H2(tx));
        }
        let io = self.upstream.connect(true).await?;
        if !io.is_h2() && matches!(self.upstream, Upstream::Tls { .. }) {
            self.no_h2.store(true, Ordering::Relaxed);
            return handshake_h1(io).await.map(Lease::H1);
        }
        let mut b = http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new());
        let (tx, conn) = b.handshake(io).await.map_err(io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("upstream HTTP/2 connection ended: {e}");
            }
        });
        if self.reuse
            && let Ok(mut g) = self.h2.lock()
        {
            *g = Some(tx.clone());
        }
        Ok(Lease::H2(tx))
    }

    /// Opens a new HTTP/1.1 connection.
    pub async fn dial_h1(&self) -> io::Result<H1> {
        handshake_h1(self.upstream.connect(false).await?).await
    }

    /// Keeps `tx` for another request if it can take one.
    pub fn give_back(&self, tx: H1) {
        if !self.reuse || tx.is_closed() {
            return;
        }
        let now = Instant::now();
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        // Stale entries are left to the sweeper and to `take_idle`; only a
        // full stack is cleaned here, so a return stays a push.
        if idle.len() >= MAX_IDLE {
            retain_fresh(&mut idle, now);
        }
        if idle.len() < MAX_IDLE {
            idle.push((tx, now));
        }
    }

    /// The most recently used idle connection that is not closed (it may
    /// still be finishing its last response: wait with `ready()`).
    fn take_idle(&self) -> Option<H1> {
        let now = Instant::now();
        let mut idle = self.idle.lock().ok()?;
        while let Some((tx, since)) = idle.pop() {
            if !tx.is_closed() && now.duration_since(since) < IDLE_TIMEOUT {
                return Some(tx);
            }
        }
        None
    }

    fn shared_h2(&self) -> Option<H2> {
        let g = self.h2.lock().ok()?;
        g.as_ref().filter(|tx| !tx.is_closed()).cloned()
    }
}

fn retain_fresh(idle: &mut Vec<(H1, Instant)>, now: Instant) {
    idle.retain(|(t, since)| !t.is_closed() && now.duration_since(*since) < IDLE_TIMEOUT);
}

async fn handshake_h1(io: UpstreamIo) -> io::Result<H1> {
    let (tx, conn) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("upstream HTTP/1.1 connection ended: {e}");
        }
    });
    Ok(tx)
}

// === impl UpstreamBody ===

impl UpstreamBody {
    /// A body that returns `conn` to `pool` when read to the end.
    pub fn new(inner: Incoming, conn: Option<(H1, Arc<Pool>)>) -> Self {
        Self { inner, conn }
    }

    fn release(&mut self) {
        if let Some((tx, pool)) = self.conn.take() {
            pool.give_back(tx);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    /// A body nobody read (HEAD, 204, or already at its end) still frees
    /// its connection; one dropped half-read closes it.
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn idle_len(p: &Pool) -> usize {
        p.idle.lock().unwrap().len()
    }

    /// A TCP server that accepts and holds connections, and its address.
    async fn holding_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = l.accept().await {
                conns.push(c);
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn idle_connections_are_reused_then_swept_by_age() {
        let (addr, held) = holding_server().await;
        let pool = Pool::new(Upstream::Plain(addr), true);
        let tx = pool.h1().await.unwrap();
        pool.give_back(tx);
        assert_eq!(idle_len(&pool), 1);
        let tx = pool.h1().await.unwrap();
        assert_eq!(idle_len(&pool), 0, "the idle connection was taken");
        pool.give_back(tx);
        pool.sweep(Instant::now() + IDLE_TIMEOUT / 2);
        assert_eq!(idle_len(&pool), 1, "young connections stay");
        pool.sweep(Instant::now() + IDLE_TIMEOUT);
        assert_eq!(idle_len(&pool), 0, "old connections are closed");
        held.abort();
    }

    #[tokio::test]
    async fn without_reuse_nothing_is_kept() {
        let (addr, held) = holding_server().await;
        let pool = Pool::new(Upstream::Plain(addr), false);
        let tx = pool.h1().await.unwrap();
        pool.give_back(tx);
        assert_eq!(idle_len(&pool), 0);
        held.abort();
    }
}
