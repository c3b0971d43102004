//! Idle detection with paused time.
#![allow(clippy::unwrap_used)]

use super::Activity;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const T: Duration = Duration::from_secs(10);

#[tokio::test(start_paused = true)]
async fn idle_after_the_timeout_from_the_last_activity() {
    let a = Activity::new();
    let start = Instant::now();
    let idle = a.idle(T, || false);
    let marks = async {
        tokio::time::sleep(T / 2).await;
        a.mark();
    };
    tokio::join!(idle, marks);
    assert_eq!(start.elapsed(), T / 2 + T);
}

#[tokio::test(start_paused = true)]
async fn never_idle_while_busy_then_the_timeout_from_when_it_ended() {
    let a = Activity::new();
    let busy = AtomicBool::new(true);
    let start = Instant::now();
    let idle = a.idle(T, || busy.load(Ordering::Relaxed));
    // Busy (a request in flight) for three timeouts, then done.
    let work = async {
        tokio::time::sleep(T * 3).await;
        a.mark();
        busy.store(false, Ordering::Relaxed);
    };
    tokio::join!(idle, work);
    assert_eq!(start.elapsed(), T * 4);
}
