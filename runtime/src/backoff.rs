//! Exponential backoff with jitter: the one retry policy of every loop that
//! calls something that may be down (the agent towards the CA, the proxy
//! towards the agent).

use std::time::Duration;

use rand::Rng;

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

/// Whether a gRPC status code is worth retrying with backoff (the server
/// was unreachable, overloaded or failed on its side) rather than a
/// verdict on the request.
pub fn retryable(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Internal
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_codes_are_retryable() {
        assert!(retryable(tonic::Code::Unavailable));
        assert!(!retryable(tonic::Code::PermissionDenied));
        assert!(!retryable(tonic::Code::InvalidArgument));
    }

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
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay() <= Duration::from_secs(1));
    }
}
