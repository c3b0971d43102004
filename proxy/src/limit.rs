//! The per-listener connection cap, shared by every worker thread.
//!
//! Not `meshid_runtime::uds::Admission`: that one counts open connections
//! per Unix user (from peer credentials) under a lock; a TCP peer has no
//! user, and every worker thread admits on the same listener, so here the
//! cap is one lock-free semaphore plus the listener's gauge and counter.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `max` open connections on one listener; the rest are refused.
#[derive(Clone, Debug)]
pub struct ConnLimit {
    slots: Arc<Semaphore>,
    open: Gauge,
    refused: Counter,
}

/// Held by an open connection; frees its slot when dropped.
#[derive(Debug)]
pub struct ConnSlot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

// === impl ConnLimit ===

impl ConnLimit {
    /// A cap of `max` connections recorded in `open` and `refused`.
    pub fn new(max: usize, open: Gauge, refused: Counter) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            open,
            refused,
        }
    }

    /// A slot for a newly accepted connection, or `None` (counted as
    /// refused) when the listener is full: close the connection at once.
    pub fn admit(&self) -> Option<ConnSlot> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.open.inc();
                Some(ConnSlot {
                    _permit: permit,
                    open: self.open.clone(),
                })
            }
            Err(_) => {
                self.refused.inc();
                None
            }
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.open.dec();
    }
}
