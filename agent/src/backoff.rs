//! Exponential backoff with jitter for calls to the CA.
//!
//! Every loop that retries the CA (attestation at start-up, agent SVID
//! renewal, the SVID manager's sync) starts at [`CA_RETRY_BASE`], doubles up
//! to [`CA_RETRY_MAX`] and starts over after a success, so a CA that comes
//! back is noticed within about [`CA_RETRY_MAX`].

use std::time::Duration;

use rand::Rng;

/// First retry delay after a failed CA call.
pub const CA_RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay while the CA fails: bounds how long a recovered CA
/// waits for the agent (delays are drawn from 5 s to 10 s once capped).
pub const CA_RETRY_MAX: Duration = Duration::from_secs(10);

/// Delays that double from `base` up to `max`; each is drawn uniformly from
/// the upper half of the current step, so delays never shrink before the
/// cap and spread out (between `max / 2` and `max`) once there.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

// === impl Backoff ===

impl Backoff {
    /// A backoff starting at `base`, capped at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The delay before the next retry; grows each call.
    pub fn next_delay(&mut self) -> Duration {
        let step = self
            .base
            .saturating_mul(1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        half + half.mul_f64(rand::rng().random_range(0.0..=1.0))
    }

    /// Failures since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to `base` after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    /// [`CA_RETRY_BASE`] doubling to [`CA_RETRY_MAX`].
    fn default() -> Self {
        Self::new(CA_RETRY_BASE, CA_RETRY_MAX)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(16));
        let delays: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        for w in delays.windows(2) {
            assert!(w[1] >= w[0] || w[0] >= Duration::from_secs(8), "{delays:?}");
        }
        assert!(delays[0] >= Duration::from_millis(500) && delays[0] <= Duration::from_secs(1));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(16)));
        assert!(delays[7] >= Duration::from_secs(8));
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn default_ca_backoff_never_exceeds_10s_and_restarts_after_a_success() {
        let mut b = Backoff::default();
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
