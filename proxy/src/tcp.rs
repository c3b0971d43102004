//! Opaque TCP proxying: one authorization decision per connection, then
//! bytes copied both ways until either side closes.

use crate::access_log::{self, Entry};
use crate::authz::{Verdict, rule_label};
use crate::connect::{ConnectFailure, connect_tls, dial};
use crate::context::Shared;
use crate::metrics::{ConnLabels, Direction, ERROR_DECISION, INBOUND, OUTBOUND};
use crate::policy::Request as AuthzRequest;
use meshid_identity::SpiffeId;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, copy_bidirectional};

/// An inbound connection whose mTLS handshake completed: authorize the peer
/// for `port`; if denied, close; else splice to `forward_to`.
pub async fn inbound<IO>(
    mut io: IO,
    peer: Option<SpiffeId>,
    peer_label: Arc<str>,
    port: u16,
    forward_to: SocketAddr,
    destination: Arc<str>,
    shared: Arc<Shared>,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let policy = shared.policy.load();
    let d = policy.evaluate(&AuthzRequest::tcp(peer.as_ref(), port));
    let verdict = shared.verdict(&d);
    let rule = rule_label(&d);
    if verdict == Verdict::DenyAudit {
        tracing::info!(source = %peer_label, rule = ?rule, "audit: connection would be denied");
    }
    let bytes = if verdict == Verdict::Deny {
        let _ = io.shutdown().await;
        (0, 0)
    } else {
        splice(&mut io, forward_to).await
    };
    finish(
        &shared,
        INBOUND,
        &peer_label,
        &destination,
        (verdict, rule, None),
        bytes,
        start,
    );
}

/// An outbound connection from the local app: mTLS to `upstream` with client
/// config `index`, then splice.
pub async fn outbound<IO>(
    mut io: IO,
    upstream: SocketAddr,
    index: usize,
    destination: Arc<str>,
    shared: Arc<Shared>,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let local: Arc<str> = Arc::from("local");
    let mut error = None;
    let bytes = match connect_tls(upstream, index, false, &shared.tls, &shared.metrics).await {
        Ok(mut up) => match copy_bidirectional(&mut io, &mut up).await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(%upstream, "TCP connection ended: {e}");
                (0, 0)
            }
        },
        Err(e) => {
            let f = ConnectFailure::new(&e, upstream, &destination);
            error = Some(f.reason);
            (0, 0)
        }
    };
    finish(
        &shared,
        OUTBOUND,
        &local,
        &destination,
        (Verdict::Allow, None, error),
        bytes,
        start,
    );
}

async fn splice<IO: AsyncRead + AsyncWrite + Unpin>(io: &mut IO, to: SocketAddr) -> (u64, u64) {
    match dial(to).await {
        Ok(mut up) => copy_bidirectional(io, &mut up).await.unwrap_or_else(|e| {
            tracing::debug!(%to, "TCP connection ended: {e}");
            (0, 0)
        }),
        Err(e) => {
            tracing::warn!(%to, "cannot connect to the application: {e}");
            let _ = io.shutdown().await;
            (0, 0)
        }
    }
}

/// Records a finished connection; `error` (not forwarded) makes the
/// decision `error`.
fn finish(
    shared: &Shared,
    direction: Direction,
    source: &Arc<str>,
    destination: &Arc<str>,
    (verdict, rule, error): (Verdict, Option<String>, Option<&'static str>),
    (bytes_in, bytes_out): (u64, u64),
    start: Instant,
) {
    let decision = if error.is_some() {
        ERROR_DECISION
    } else {
        verdict.as_str()
    };
    shared.metrics.connection(&ConnLabels {
        direction,
        source: source.clone(),
        destination: destination.clone(),
        decision,
    });
    shared.access_log.log(&Entry {
        time: access_log::timestamp(SystemTime::now()),
        direction,
        protocol: "tcp",
        source,
        destination,
        http_version: None,
        method: None,
        path: None,
        status: None,
        decision,
        error,
        rule,
        bytes_in,
        bytes_out,
        duration_ms: access_log::millis(start.elapsed()),
        trace_id: None,
    });
}
