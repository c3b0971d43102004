//! The agent's retry policy towards the CA, on the shared
//! [`meshid_runtime::backoff::Backoff`].
//!
//! Every loop that retries the CA (attestation at start-up, agent SVID
//! renewal, the SVID manager's sync) starts at [`CA_RETRY_BASE`], doubles up
//! to [`CA_RETRY_MAX`] and starts over after a success, so a CA that comes
//! back is noticed within about [`CA_RETRY_MAX`].

use std::time::Duration;

pub use meshid_runtime::backoff::Backoff;

/// First retry delay after a failed CA call.
pub const CA_RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay while the CA fails: bounds how long a recovered CA
/// waits for the agent (delays are drawn from 5 s to 10 s once capped).
pub const CA_RETRY_MAX: Duration = Duration::from_secs(10);

/// The CA retry backoff: [`CA_RETRY_BASE`] doubling to [`CA_RETRY_MAX`].
pub fn ca_retry() -> Backoff {
    Backoff::new(CA_RETRY_BASE, CA_RETRY_MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_ca_backoff_never_exceeds_10s_and_restarts_after_a_success() {
        let mut b = ca_retry();
        let delays: Vec<_> = (0..40).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= CA_RETRY_MAX), "{delays:?}");
        assert!(
            delays[10..].iter().all(|d| *d >= CA_RETRY_MAX / 2),
            "{delays:?}"
        );
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay() <= CA_RETRY_BASE);
    }
}
