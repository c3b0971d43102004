//! Waiting for a condition without fixed sleeps.

use std::time::{Duration, Instant};

/// How often [`eventually`] and [`eventually_async`] poll.
const POLL: Duration = Duration::from_millis(20);

/// Polls `f` every 20 ms until it returns `Some`, or panics with `what`
/// after `timeout`.
pub fn eventually<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    eventually_every(what, timeout, POLL, f)
}

/// [`eventually`] polling every `every` (for checks that start a process).
pub fn eventually_every<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(every);
    }
}

/// Async version of [`eventually`]: polls the future `f()` every 20 ms.
pub async fn eventually_async<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}
