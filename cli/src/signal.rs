//! Waiting for the stop signal every long-running command honours.

use tokio::signal::unix::{SignalKind, signal};

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown() {
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
