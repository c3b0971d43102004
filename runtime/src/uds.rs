//! Hardened Unix-socket listeners for tonic servers, and the one way
//! clients open a tonic channel to such a socket ([`channel`]).
//!
//! A Unix socket that every local user may connect to (the SPIFFE Workload
//! API is mode 0777) must not let one user hold the server's connections
//! or file descriptors. [`UdsListener::incoming`] turns a `UnixListener` into
//! the stream of connections tonic serves, and enforces per listener:
//!
//! - a cap on open connections ([`UdsLimits::max_connections`]) and on open
//!   connections of one Unix user ([`UdsLimits::max_connections_per_uid`]),
//!   so a single local user cannot starve the others; at the cap a new
//!   connection is accepted and closed at once, so the accept loop never
//!   stalls and the caller sees a prompt failure;
//! - a handshake timeout: the HTTP/2 preface, SETTINGS and the first
//!   request's complete header block must arrive within
//!   [`UdsLimits::handshake_timeout`] (this is the header-read timeout that
//!   stops one-byte-a-second clients);
//! - an idle timeout: a connection with no open stream for
//!   [`UdsLimits::idle_timeout`] is closed; a stream that is open (a
//!   `FetchX509SVID` watch lasts as long as the workload) is never cut;
//! - the [`authority`](crate::authority) rewrite, so any gRPC client's
//!   `:authority` is accepted;
//! - metrics: open connections, refused connections and timeouts by reason
//!   ([`UdsMetrics`]).
//!
//! ```text
//! accept ─▶ peer uid ─▶ Admission (total, per uid) ──refused──▶ close, count
//!                              │ permit
//!                              ▼
//!                 wrap(stream) (e.g. read peer credentials)
//!                              ▼
//!   GuardedConnection: AuthorityRewriter on reads, StreamTracker on both
//!   directions, one timer (handshake, then idle while no stream is open)
//! ```

mod admission;
mod channel;
mod conn;
mod metrics;
mod streams;

pub use admission::{Admission, Permit, Refusal};
pub use channel::{CONNECT_TIMEOUT, ChannelError, channel};
pub use conn::GuardedConnection;
pub use metrics::{ListenerMetrics, UdsMetrics};

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::net::{UnixListener, UnixStream};

/// Pause after a failed `accept` (e.g. out of file descriptors) so the
/// accept loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Limits of one Unix-socket listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdsLimits {
    /// Time from accept until the first request's headers are complete.
    pub handshake_timeout: Duration,
    /// Time a connection may stay open without any open stream.
    pub idle_timeout: Duration,
    /// Most connections open at once on this listener.
    pub max_connections: usize,
    /// Most connections one Unix user may hold open on this listener.
    pub max_connections_per_uid: usize,
}

impl Default for UdsLimits {
    /// 10 s handshake, 5 min idle, 8,192 connections, 4,096 per user.
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_connections: 8192,
            max_connections_per_uid: 4096,
        }
    }
}

/// A bound Unix listener with the limits and metrics it is served under.
#[derive(Debug)]
pub struct UdsListener {
    listener: UnixListener,
    limits: UdsLimits,
    metrics: ListenerMetrics,
}

// === impl UdsListener ===

impl UdsListener {
    /// `listener` served under `limits`, counted in `metrics`.
    pub fn new(listener: UnixListener, limits: UdsLimits, metrics: ListenerMetrics) -> Self {
        Self {
            listener,
            limits,
            metrics,
        }
    }

    /// Accepts connections forever under the limits, passing each admitted
    /// stream through `wrap` (which may refuse it, e.g. when its peer
    /// credentials cannot be read). Refused connections are closed and
    /// counted; they never reach the server.
    pub fn incoming<S, F>(
        self,
        wrap: F,
    ) -> impl Stream<Item = io::Result<GuardedConnection<S>>> + Send + 'static
    where
        S: Send + 'static,
        F: FnMut(UnixStream) -> io::Result<S> + Send + 'static,
    {
        let Self {
            listener,
            limits,
            metrics,
        } = self;
        let admission = Arc::new(Admission::new(
            limits.max_connections,
            limits.max_connections_per_uid,
        ));
        let state = (listener, admission, wrap, metrics);
        futures::stream::unfold(
            state,
            move |(listener, admission, mut wrap, metrics)| async move {
                let conn = accept(&listener, &admission, &mut wrap, limits, &metrics).await;
                Some((Ok(conn), (listener, admission, wrap, metrics)))
            },
        )
    }
}

/// Default limits and metrics that go nowhere.
impl From<UnixListener> for UdsListener {
    fn from(listener: UnixListener) -> Self {
        Self::new(
            listener,
            UdsLimits::default(),
            ListenerMetrics::unregistered("unix"),
        )
    }
}

/// The next admitted connection; refusals are closed and counted here.
async fn accept<S>(
    listener: &UnixListener,
    admission: &Arc<Admission>,
    wrap: &mut impl FnMut(UnixStream) -> io::Result<S>,
    limits: UdsLimits,
    metrics: &ListenerMetrics,
) -> GuardedConnection<S> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept on the Unix socket failed");
                metrics.refused(Refusal::AcceptFailed);
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let uid = match stream.peer_cred() {
            Ok(cred) => cred.uid(),
            Err(e) => {
                tracing::warn!(error = %e, "closing a connection without peer credentials");
                metrics.refused(Refusal::NoPeerCredentials);
                continue;
            }
        };
        let permit = match admission.admit(uid) {
            Ok(permit) => permit,
            Err(refusal) => {
                tracing::debug!(uid, reason = refusal.as_str(), "connection refused");
                metrics.refused(refusal);
                continue;
            }
        };
        match wrap(stream) {
            Ok(inner) => return GuardedConnection::new(inner, permit, limits, metrics.clone()),
            Err(e) => {
                tracing::warn!(error = %e, uid, "closing a connection");
                metrics.refused(Refusal::NoPeerCredentials);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
