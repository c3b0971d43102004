//! Outbound listeners: accept plaintext from the local application and
//! originate mTLS to a peer proxy whose SPIFFE ID must match.

use crate::config::{OutboundConfig, Protocol};
use crate::connect::Upstream;
use crate::context::{Peer, Shared};
use crate::http::{Forward, UpstreamVersion, serve_connection};
use crate::limit::ConnLimit;
use crate::metrics::{ConnLabels, OUTBOUND};
use crate::tcp::{self, Route};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Accepts on `listener` until draining starts. `index` selects this
/// listener's client TLS config; a connection beyond `cap` is closed at
/// once (and counted).
pub async fn serve(
    listener: TcpListener,
    cfg: OutboundConfig,
    (index, cap): (usize, ConnLimit),
    shared: Arc<Shared>,
) {
    let destination: Arc<str> = Arc::from(cfg.destination());
    let upstream = Upstream::Tls {
        addr: cfg.upstream,
        index,
        tls: shared.tls.clone(),
        metrics: shared.metrics.clone(),
    };
    let fwd = Arc::new(Forward::new(
        (OUTBOUND, destination.clone()),
        cfg.upstream.port(),
        (upstream, UpstreamVersion::Same),
        cfg.pool,
        shared.clone(),
    ));
    let local: Arc<str> = Arc::from("local");
    let drain = shared.drain.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = drain.signaled() => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!(listen = %cfg.listen, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = cap.admit() else {
            tracing::debug!(listen = %cfg.listen, "listener full, connection refused");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (shared, fwd, destination, local) = (
            shared.clone(),
            fwd.clone(),
            destination.clone(),
            local.clone(),
        );
        let (protocol, upstream_addr) = (cfg.protocol, cfg.upstream);
        tokio::spawn(async move {
            let _slot = slot;
            let _guard = shared.drain.guard();
            match protocol {
                Protocol::Tcp => {
                    let route = Route {
                        upstream: upstream_addr,
                        destination,
                    };
                    tcp::outbound(tcp, index, &route, shared.clone()).await;
                }
                _ => {
                    shared.metrics.connection(&ConnLabels {
                        direction: OUTBOUND,
                        source: local.clone(),
                        destination,
                        decision: "-",
                    });
                    serve_connection(
                        tcp,
                        Peer {
                            id: None,
                            label: local,
                        },
                        fwd,
                    )
                    .await;
                }
            }
        });
    }
}
