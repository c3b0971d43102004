//! Opaque TCP proxying: one authorization decision per connection, then
//! bytes copied both ways until either side closes or the connection has
//! been idle (no byte either way) for `connections.idle_timeout`.

mod idle;

use crate::access_log::{self, Entry};
use crate::authz::{Verdict, rule_label};
use crate::connect::{ConnectFailure, connect_tls, dial};
use crate::context::{Peer, Shared};
use crate::metrics::{ConnLabels, Direction, ERROR_DECISION, INBOUND, OUTBOUND};
use crate::policy::Request as AuthzRequest;
use idle::{End, splice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Where a TCP listener sends its connections.
#[derive(Clone, Debug)]
pub struct Route {
    /// The address dialed: the application (inbound) or the peer proxy.
    pub upstream: SocketAddr,
    /// Destination label (address or expected server ID).
    pub destination: Arc<str>,
}

/// What came of one connection, for the metrics and the access log.
#[derive(Debug)]
struct ConnOutcome {
    started: Instant,
    verdict: Verdict,
    rule: Option<String>,
    /// Why it was not forwarded (then the decision is `error`).
    error: Option<&'static str>,
    bytes_in: u64,
    bytes_out: u64,
}

/// An inbound connection whose mTLS handshake completed: authorize `peer`
/// for the application's port; if denied, close; else splice to the
/// application.
pub async fn inbound<IO>(mut io: IO, peer: Peer, route: &Route, shared: Arc<Shared>)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut outcome = ConnOutcome::start();
    let policy = shared.policy.load();
    let d = policy.evaluate(&AuthzRequest::tcp(peer.id.as_ref(), route.upstream.port()));
    outcome.verdict = shared.verdict(&d);
    outcome.rule = rule_label(&d);
    if outcome.verdict == Verdict::DenyAudit {
        tracing::info!(source = %peer.label, rule = ?outcome.rule, "audit: connection would be denied");
    }
    if outcome.verdict == Verdict::Deny {
        let _ = io.shutdown().await;
    } else {
        match dial(route.upstream).await {
            Ok(mut up) => outcome.copy(&mut io, &mut up, route, &shared).await,
            Err(e) => {
                tracing::warn!(to = %route.upstream, "cannot connect to the application: {e}");
                let _ = io.shutdown().await;
            }
        }
    }
    record(&shared, (INBOUND, &peer.label), route, outcome);
}

/// An outbound connection from the local app: mTLS to the peer proxy with
/// client config `index`, then splice.
pub async fn outbound<IO>(mut io: IO, index: usize, route: &Route, shared: Arc<Shared>)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut outcome = ConnOutcome::start();
    match connect_tls(route.upstream, index, false, &shared.tls, &shared.metrics).await {
        Ok(mut up) => outcome.copy(&mut io, &mut up, route, &shared).await,
        Err(e) => {
            let f = ConnectFailure::new(&e, route.upstream, &route.destination);
            outcome.error = Some(f.reason);
        }
    }
    let local: Arc<str> = Arc::from("local");
    record(&shared, (OUTBOUND, &local), route, outcome);
}

// === impl ConnOutcome ===

impl ConnOutcome {
    fn start() -> Self {
        Self {
            started: Instant::now(),
            verdict: Verdict::Allow,
            rule: None,
            error: None,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Splices `io` and `up` and records the bytes moved.
    async fn copy<A, B>(&mut self, io: &mut A, up: &mut B, route: &Route, shared: &Shared)
    where
        A: AsyncRead + AsyncWrite + Unpin,
        B: AsyncRead + AsyncWrite + Unpin,
    {
        let s = splice(io, up, shared.limits.idle_timeout()).await;
        match s.end {
            End::Closed => {}
            End::Idle => {
                tracing::debug!(upstream = %route.upstream, "closing an idle TCP connection")
            }
            End::Failed(kind) => {
                tracing::debug!(upstream = %route.upstream, "TCP connection ended: {kind}");
            }
        }
        (self.bytes_in, self.bytes_out) = (s.from_client, s.from_upstream);
    }
}

/// Records a finished connection from `source`; an error (not forwarded)
/// makes the decision `error`.
fn record(
    shared: &Shared,
    (direction, source): (Direction, &Arc<str>),
    route: &Route,
    outcome: ConnOutcome,
) {
    let decision = if outcome.error.is_some() {
        ERROR_DECISION
    } else {
        outcome.verdict.as_str()
    };
    shared.metrics.connection(&ConnLabels {
        direction,
        source: source.clone(),
        destination: route.destination.clone(),
        decision,
    });
    shared.access_log.log(&Entry {
        time: access_log::timestamp(SystemTime::now()),
        direction,
        protocol: "tcp",
        source,
        destination: &route.destination,
        http_version: None,
        method: None,
        path: None,
        status: None,
        decision,
        error: outcome.error,
        rule: outcome.rule,
        bytes_in: outcome.bytes_in,
        bytes_out: outcome.bytes_out,
        duration_ms: access_log::millis(outcome.started.elapsed()),
        trace_id: None,
    });
}
