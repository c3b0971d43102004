//! One downstream HTTP connection: hyper's server (HTTP/1.1 and HTTP/2
//! detected from the first bytes), its header-read and idle timeouts, and
//! the state its requests share.

use super::forward::Forward;
use crate::context::Peer;
use crate::metrics::{Direction, RequestRecorder};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

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
    /// Requests being handled now (the idle timer runs while it is 0).
    active: watch::Sender<usize>,
}

/// Counts one request as in flight while it lives.
#[derive(Debug)]
pub struct Active<'a>(&'a watch::Sender<usize>);

// === impl Downstream ===

impl Downstream {
    /// Marks a request in flight until the returned guard is dropped.
    pub fn active(&self) -> Active<'_> {
        self.active.send_modify(|n| *n += 1);
        Active(&self.active)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
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
    let (active, idle_rx) = watch::channel(0usize);
    let (direction, destination) = fwd.listener();
    let conn = Arc::new(Downstream {
        active,
        metrics: shared
            .metrics
            .recorder(direction, peer.label.clone(), destination.clone()),
        direction,
        destination,
        peer,
    });
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
        () = idle(idle_rx, limits.idle_timeout()) => {
            tracing::debug!("closing an idle HTTP connection");
        }
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!("HTTP connection ended while draining: {e}");
    }
}

/// Resolves once no request has been in flight for `timeout`.
async fn idle(mut active: watch::Receiver<usize>, timeout: Duration) {
    loop {
        if active.wait_for(|n| *n == 0).await.is_err() {
            return std::future::pending().await;
        }
        active.mark_unchanged();
        tokio::select! {
            () = tokio::time::sleep(timeout) => return,
            r = active.changed() => if r.is_err() {
                return std::future::pending().await;
            },
        }
    }
}
