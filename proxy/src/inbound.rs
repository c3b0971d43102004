//! Inbound listeners: terminate mTLS (client SVID required), identify the
//! peer, authorize, forward to the local application. The policy file's
//! peer authentication may let plaintext in instead (`PERMISSIVE`: when the
//! first byte is not a TLS handshake; `DISABLE`: always), from a peer
//! without identity.

use crate::config::{InboundConfig, Protocol};
use crate::connect::Upstream;
use crate::context::{Peer, Shared};
use crate::http::{Forward, UpstreamVersion, serve_connection};
use crate::limit::ConnLimit;
use crate::metrics::{ConnLabels, INBOUND};
use crate::policy::MtlsMode;
use crate::tcp::{self, Route};
use crate::tls::handshake_error_reason;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// Longest a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a PERMISSIVE listener waits for the client's first byte.
const DETECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The first byte of a TLS connection: a handshake record (ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// The source label of a peer without a verified SPIFFE ID.
const UNAUTHENTICATED: &str = "-";

/// Accepts on `listener` until draining starts.
/// A connection beyond `cap` is closed at once (and counted).
pub async fn serve(listener: TcpListener, cfg: InboundConfig, cap: ConnLimit, shared: Arc<Shared>) {
    let destination: Arc<str> = Arc::from(cfg.forward_to.to_string());
    let fwd = Arc::new(Forward::new(
        (INBOUND, destination.clone()),
        cfg.forward_to.port(),
        (
            Upstream::Plain(cfg.forward_to),
            match cfg.protocol {
                Protocol::Http2 => UpstreamVersion::Http2,
                _ => UpstreamVersion::Http1,
            },
        ),
        true,
        shared.clone(),
    ));
    let drain = shared.drain.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = drain.signaled() => break,
        };
        let (tcp, client) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(listen = %cfg.listen, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = cap.admit() else {
            tracing::debug!(%client, listen = %cfg.listen, "listener full, connection refused");
            continue;
        };
        let (shared, fwd, destination, cfg) = (
            shared.clone(),
            fwd.clone(),
            destination.clone(),
            cfg.clone(),
        );
        tokio::spawn(async move {
            let _slot = slot;
            let _guard = shared.drain.guard();
            connection(tcp, &cfg, shared.clone(), fwd, destination)
                .await
                .unwrap_or_else(
                    |reason| tracing::debug!(%client, reason, "inbound connection refused"),
                );
        });
    }
}

async fn connection(
    tcp: TcpStream,
    cfg: &InboundConfig,
    shared: Arc<Shared>,
    fwd: Arc<Forward>,
    destination: Arc<str>,
) -> Result<(), &'static str> {
    let _ = tcp.set_nodelay(true);
    let mode = shared
        .policy
        .load()
        .peer_authentication()
        .mode(cfg.forward_to.port());
    let mtls = match mode {
        MtlsMode::Strict => true,
        MtlsMode::Permissive => starts_with_tls(&tcp).await?,
        MtlsMode::Disable => false,
    };
    if !mtls {
        shared.metrics.peer_authentication(mode.as_str(), false);
        let peer = Peer {
            id: None,
            label: Arc::from(UNAUTHENTICATED),
        };
        forward(tcp, peer, cfg, shared, fwd, destination).await;
        return Ok(());
    }
    let tls = shared.tls.current().ok_or("no identity loaded yet")?;
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let reason = handshake_error_reason(&e);
            shared.metrics.tls_error(INBOUND, reason);
            return Err(reason);
        }
        Err(_) => {
            shared.metrics.tls_error(INBOUND, "timeout");
            return Err("timeout");
        }
    };
    shared.metrics.handshake(INBOUND);
    shared.metrics.peer_authentication(mode.as_str(), true);
    drop(tls);
    let peer = stream.peer_id();
    let label: Arc<str> = peer
        .as_ref()
        .map_or_else(|| Arc::from(UNAUTHENTICATED), |p| Arc::from(p.as_str()));
    forward(
        stream,
        Peer { id: peer, label },
        cfg,
        shared,
        fwd,
        destination,
    )
    .await;
    Ok(())
}

/// Serves an admitted connection from `peer` by the listener's protocol.
async fn forward<IO>(
    io: IO,
    peer: Peer,
    cfg: &InboundConfig,
    shared: Arc<Shared>,
    fwd: Arc<Forward>,
    destination: Arc<str>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match cfg.protocol {
        Protocol::Tcp => {
            let route = Route {
                upstream: cfg.forward_to,
                destination,
            };
            tcp::inbound(io, peer, &route, shared).await;
        }
        _ => {
            shared.metrics.connection(&ConnLabels {
                direction: INBOUND,
                source: peer.label.clone(),
                destination,
                decision: "-",
            });
            serve_connection(io, peer, fwd).await;
        }
    }
}

/// PERMISSIVE: true if the client opens with a TLS handshake record. A
/// client that sends nothing within [`DETECT_TIMEOUT`] is taken as
/// plaintext (a server-speaks-first protocol).
async fn starts_with_tls(tcp: &TcpStream) -> Result<bool, &'static str> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(DETECT_TIMEOUT, tcp.peek(&mut first)).await {
        Ok(Ok(0)) => Err("closed before sending anything"),
        Ok(Ok(_)) => Ok(first[0] == TLS_HANDSHAKE_RECORD),
        Ok(Err(_)) => Err("read failed"),
        Err(_) => Ok(false),
    }
}
