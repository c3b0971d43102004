//! The lifetime policy of issued SVIDs.

use std::time::{Duration, SystemTime};

/// The lifetime of a new SVID: the entry's TTL (or `default` when the entry
/// sets none), shortened to the requested TTL if one is given, and never
/// above `max`.
pub fn svid_lifetime(
    requested: Duration,
    entry: Duration,
    default: Duration,
    max: Duration,
) -> Duration {
    let base = if entry.is_zero() { default } else { entry };
    let wanted = if requested.is_zero() {
        base
    } else {
        requested.min(base)
    };
    wanted.min(max)
}

/// `now + lifetime`, cut to the CA certificate's notAfter; `None` if the
/// CA has no time left.
pub fn clamp_to_ca(
    now: SystemTime,
    lifetime: Duration,
    ca_not_after: SystemTime,
) -> Option<SystemTime> {
    let wanted = now.checked_add(lifetime)?;
    let not_after = wanted.min(ca_not_after);
    (not_after > now).then_some(not_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);
    const M: Duration = Duration::from_secs(60);

    #[test]
    fn lifetime_is_the_minimum_of_request_entry_and_max() {
        assert_eq!(svid_lifetime(Duration::ZERO, Duration::ZERO, H, H), H);
        assert_eq!(svid_lifetime(M, Duration::ZERO, H, H), M);
        assert_eq!(svid_lifetime(Duration::ZERO, 10 * M, H, H), 10 * M);
        assert_eq!(svid_lifetime(20 * M, 10 * M, H, H), 10 * M);
        assert_eq!(svid_lifetime(Duration::ZERO, 5 * H, H, 2 * H), 2 * H);
        assert_eq!(svid_lifetime(3 * H, Duration::ZERO, H, 10 * H), H);
    }

    #[test]
    fn expiry_never_outlives_the_ca() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(clamp_to_ca(now, H, now + 2 * H), Some(now + H));
        assert_eq!(clamp_to_ca(now, H, now + M), Some(now + M));
        assert_eq!(clamp_to_ca(now, H, now), None);
    }
}
