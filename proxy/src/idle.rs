//! Idle detection without a timer per event: activity is one timestamp
//! (an atomic store), and a single sleep looks at it when the timeout
//! would have run out. Used by both protocols: HTTP connections (idle while
//! no request is in flight) and opaque TCP (idle while no byte moves).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// When a connection was last active.
#[derive(Debug)]
pub struct Activity {
    since: Instant,
    /// Milliseconds from `since` to the last activity.
    last_ms: AtomicU64,
}

// === impl Activity ===

impl Activity {
    /// A connection active now.
    pub fn new() -> Self {
        Self {
            since: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Notes activity now.
    pub fn mark(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.since + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Resolves once `timeout` has passed since the last activity with
    /// `busy()` false (while it is true the connection is never idle).
    pub async fn idle(&self, timeout: Duration, busy: impl Fn() -> bool) {
        let mut deadline = self.last() + timeout;
        loop {
            tokio::time::sleep_until(deadline).await;
            let now = Instant::now();
            if busy() {
                deadline = now + timeout;
                continue;
            }
            let next = self.last() + timeout;
            if next <= now {
                return;
            }
            deadline = next;
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
