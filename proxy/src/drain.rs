//! Graceful shutdown: a signal every listener and connection watches, and a
//! count of the connections still open.

use tokio::sync::{mpsc, watch};

/// Shutdown signal plus a count of live connections.
///
/// Each connection holds a [`DrainGuard`]; [`DrainHandle::drain`] returns
/// when every guard is dropped.
#[derive(Clone, Debug)]
pub struct Drain {
    signal: watch::Receiver<bool>,
    live: mpsc::Sender<()>,
}

/// Held by a connection while it is open.
#[derive(Debug)]
pub struct DrainGuard {
    _live: mpsc::Sender<()>,
}

/// Owned by the wiring: starts the drain and waits for it.
#[derive(Debug)]
pub struct DrainHandle {
    signal: watch::Sender<bool>,
    live: mpsc::Receiver<()>,
}

// === impl Drain ===

impl Drain {
    /// A new drain and its handle.
    pub fn new() -> (Self, DrainHandle) {
        let (stx, srx) = watch::channel(false);
        let (ltx, lrx) = mpsc::channel(1);
        (
            Self {
                signal: srx,
                live: ltx,
            },
            DrainHandle {
                signal: stx,
                live: lrx,
            },
        )
    }

    /// Marks one live connection.
    pub fn guard(&self) -> DrainGuard {
        DrainGuard {
            _live: self.live.clone(),
        }
    }

    /// Resolves once draining starts.
    pub async fn signaled(&self) {
        let mut rx = self.signal.clone();
        let _ = rx.wait_for(|d| *d).await;
    }
}

// === impl DrainHandle ===

impl DrainHandle {
    /// Tells listeners to stop and connections to finish, then waits until
    /// all are gone. `keep` (the caller's own [`Drain`]) is dropped first.
    pub async fn drain(mut self, keep: Drain) {
        drop(keep);
        self.signal.send_replace(true);
        while self.live.recv().await.is_some() {}
    }
}
