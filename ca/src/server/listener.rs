//! Accepting TLS connections for the node API: each handshake runs in its
//! own task (bounded by a timeout) so a slow client cannot stall others.

use std::io;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::tls::NodeAcceptor;
use crate::node::TlsConnection;

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts on `listener` until the returned stream is dropped; yields
/// connections whose handshake succeeded. Returns the stream and the
/// accept task (abort it on shutdown).
pub fn tls_incoming(
    listener: TcpListener,
    acceptor: NodeAcceptor,
) -> (
    ReceiverStream<io::Result<TlsConnection>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(128);
    let task = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                break;
            }
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    (ReceiverStream::new(rx), task)
}
