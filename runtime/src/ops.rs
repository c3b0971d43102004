//! The ops HTTP endpoint of every long-running part: `/healthz` (the
//! process is up), `/readyz` (it can do its job; the body says why not) and
//! `/metrics` (Prometheus text from a prometheus-client [`Registry`]).
//!
//! ```no_run
//! # async fn demo(listener: tokio::net::TcpListener) {
//! use std::sync::Arc;
//! use meshid_runtime::ops::{self, OpsServer};
//! let registry = Arc::new(prometheus_client::registry::Registry::default());
//! let ready = ops::from_fn(|| Err(ops::NotReady::new("not synced with the CA yet")));
//! OpsServer::new(registry, Arc::new(ready))
//!     .serve(listener, async { let _ = tokio::signal::ctrl_c().await; })
//!     .await;
//! # }
//! ```
//!
//! The endpoint is reachable by anything that can reach its port, so a
//! hostile client gets little: HTTP/1.1 only, one request per connection,
//! a header read timeout, a cap on open connections (a connection over the
//! cap is accepted and closed at once), and a deadline for the whole
//! connection, so a client that never reads its answer is dropped too.
//! [`probe`] is the client side (`meshid healthcheck --url`).

mod probe;
mod readiness;
mod respond;

pub use probe::{ProbeError, probe};
pub use readiness::{FnReadiness, NotReady, Readiness, from_fn};
pub use respond::METRICS_CONTENT_TYPE;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};

use respond::Routes;

/// The largest request head the server buffers (hyper's minimum is 8 KiB).
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Bounds on what one client may cost the ops endpoint.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpsLimits {
    /// The request line and headers must arrive within this.
    pub header_read_timeout: Duration,
    /// A readiness check that takes longer is answered as not ready.
    pub request_timeout: Duration,
    /// A connection still open after this is closed, whatever it is doing.
    pub connection_timeout: Duration,
    /// Open connections at most; more are closed at accept.
    pub max_connections: usize,
    /// On shutdown, how long open connections may take to finish.
    pub drain_timeout: Duration,
}

/// The ops endpoint: a registry, a readiness check and limits.
pub struct OpsServer {
    registry: Arc<Registry>,
    readiness: Arc<dyn Readiness>,
    limits: OpsLimits,
}

// === impl OpsLimits ===

impl Default for OpsLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(15),
            max_connections: 64,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

// === impl OpsServer ===

impl OpsServer {
    /// Serves `registry` on `/metrics` and `readiness` on `/readyz`, with
    /// the default [`OpsLimits`].
    pub fn new(registry: Arc<Registry>, readiness: Arc<dyn Readiness>) -> Self {
        Self {
            registry,
            readiness,
            limits: OpsLimits::default(),
        }
    }

    /// Replaces the limits.
    pub fn limits(mut self, limits: OpsLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves connections from `listener` until `shutdown` completes, then
    /// lets open connections finish (bounded by
    /// [`OpsLimits::drain_timeout`]) and returns.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let routes = Arc::new(Routes {
            registry: self.registry,
            readiness: self.readiness,
            request_timeout: self.limits.request_timeout,
        });
        let limits = self.limits;
        let accept = crate::accept::AcceptLimits {
            max_connections: limits.max_connections,
            drain_timeout: limits.drain_timeout,
        };
        crate::accept::serve("ops", listener, accept, shutdown, move |tcp, draining| {
            connection(tcp, routes.clone(), limits.clone(), draining)
        })
        .await;
    }
}

impl fmt::Debug for OpsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpsServer")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Serves one request on `tcp`, then closes it.
async fn connection(
    tcp: TcpStream,
    routes: Arc<Routes>,
    limits: OpsLimits,
    draining: crate::accept::Draining,
) {
    let svc = hyper::service::service_fn(move |req| {
        let routes = routes.clone();
        async move { Ok::<_, Infallible>(routes.respond(&req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(false)
        .max_buf_size(MAX_REQUEST_HEAD)
        .serve_connection(TokioIo::new(tcp), svc);
    tokio::pin!(conn);
    let stopped = draining.started();
    let served = async {
        tokio::select! {
            r = conn.as_mut() => r,
            () = stopped => {
                conn.as_mut().graceful_shutdown();
                conn.as_mut().await
            }
        }
    };
    match tokio::time::timeout(limits.connection_timeout, served).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "ops: connection ended with an error"),
        Err(_) => tracing::debug!("ops: connection open too long, closed"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
