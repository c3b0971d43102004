//! The one accept loop of meshid's small HTTP servers (the ops endpoint,
//! the injection webhook): a connection cap (more are accepted and closed at
//! once), a pause instead of a spin when accept fails (out of descriptors),
//! and on shutdown a drain that tells every connection to finish and waits
//! at most a bounded time for them.

use std::future::Future;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long to wait before accepting again after accept failed.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Limits of one accept loop.
#[derive(Clone, Copy, Debug)]
pub struct AcceptLimits {
    /// Connections open at once; more are closed as soon as accepted.
    pub max_connections: usize,
    /// How long open connections may take to finish after shutdown.
    pub drain_timeout: Duration,
}

/// Tells a connection that the server is shutting down.
#[derive(Clone, Debug)]
pub struct Draining(watch::Receiver<bool>);

// === impl Draining ===

impl Draining {
    /// Resolves once the server shuts down (at once if it already has).
    pub async fn started(mut self) {
        // The `Ref` the wait returns must not live across an await.
        let _ = self.0.wait_for(|stopped| *stopped).await.is_ok();
    }
}

/// Accepts from `listener` until `shutdown` completes, running
/// `connection(tcp, draining)` on its own task for each connection within
/// the cap; then closes the listener, signals `Draining` and waits at most
/// `drain_timeout` for the connections. `name` labels the logs.
pub async fn serve<F, Fut>(
    name: &'static str,
    listener: TcpListener,
    limits: AcceptLimits,
    shutdown: impl Future<Output = ()>,
    mut connection: F,
) where
    F: FnMut(TcpStream, Draining) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) if conns.len() >= limits.max_connections => {
                    tracing::debug!(%peer, max = limits.max_connections, "{name}: at the connection cap, closing");
                    drop(tcp);
                }
                Ok((tcp, _)) => {
                    conns.spawn(connection(tcp, Draining(stop_rx.clone())));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "{name}: accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.drain_timeout, drained)
        .await
        .is_err()
    {
        tracing::debug!("{name}: connections still open after the drain timeout; closing them");
    }
}
