//! One downstream HTTP connection: hyper's server (HTTP/1.1 and HTTP/2
//! detected from the first bytes), its header-read and idle timeouts, and
//! the state its requests share.

use super::forward::Forward;
use crate::context::Peer;
use crate::idle::Activity;
use crate::metrics::{Direction, RequestRecorder};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncRead, AsyncWrite};

/// One downstream connection and the listener it came in on, shared by
/// its requests.
#[derive(Debug)]
pub struct Downstream {
    /// Who is calling.
    pub peer: Peer,
    /// The listener's direction.
    pub direction: Direction,
    /// The listener's destination label (address or expected server ID).
    pub destination: Arc<str>,
    /// The connection's request metrics.
    pub metrics: RequestRecorder,
    /// Requests being handled now (the connection is not idle while
    /// any is).
    in_flight: AtomicUsize,
    /// When the last request ended (or the connection opened).
    activity: Activity,
}

/// Counts one request as in flight while it lives.
#[derive(Debug)]
pub struct Active<'a>(&'a Downstream);

// === impl Downstream ===

impl Downstream {
    /// Marks a request in flight until the returned guard is dropped.
    pub fn active(&self) -> Active<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Active(self)
    }

    /// Resolves once no request has been in flight for the idle timeout.
    async fn idle(&self, timeout: std::time::Duration) {
        let busy = || self.in_flight.load(Ordering::Relaxed) > 0;
        self.activity.idle(timeout, busy).await;
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.activity.mark();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves HTTP/1.1 and HTTP/2 on one accepted connection until it closes,
/// draining starts, or it has had no request in flight for the
/// `connections` idle timeout (then it finishes in-flight responses
/// gracefully). HTTP/1.1 headers must arrive within the header read
/// timeout.
pub async fn serve_connection<IO>(io: IO, peer: Peer, fwd: Arc<Forward>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = fwd.shared().clone();
    let drain = &shared.drain;
    let _guard = drain.guard();
    let limits = &shared.limits;
    let (direction, destination) = fwd.listener();
    let conn = Arc::new(Downstream {
        in_flight: AtomicUsize::new(0),
        activity: Activity::new(),
        metrics: shared
            .metrics
            .recorder(direction, peer.label.clone(), destination.clone()),
        direction,
        destination,
        peer,
    });
    let downstream = conn.clone();
    let svc = hyper::service::service_fn(move |req| {
        let fwd = fwd.clone();
        let conn = conn.clone();
        async move { fwd.handle(&conn, req).await }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout());
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        biased;
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("HTTP connection ended: {e}");
            }
            return;
        }
        () = drain.signaled() => {}
        () = downstream.idle(limits.idle_timeout()) => {
            tracing::debug!("closing an idle HTTP connection");
        }
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!("HTTP connection ended while draining: {e}");
    }
}
