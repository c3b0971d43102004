//! When each rotation step is due: [`Schedule`], pure time arithmetic over
//! key slots.
//!
//! With `L` = `not_after − not_before` of the active slot: the next key is
//! prepared at `not_before + prepare_at·L` and activated at
//! `not_before + activate_at·L`, but never sooner than
//! `propagation_delay` after it was published. A tainted active key is
//! followed at once: its successor is prepared now and activated as soon as
//! it has propagated. A retired slot stays in the bundle until the longest
//! SVID it could have signed has expired.

use std::time::{Duration, SystemTime};

use crate::authority::AuthorityConfig;
use crate::config::RotationConfig;
use crate::store::{KeyKind, KeySlot};

/// The rotation schedule of one CA.
#[derive(Debug, Clone)]
pub struct Schedule {
    rotation: RotationConfig,
    /// Longest X.509-SVID (workload or agent) lifetime.
    x509_svid_ttl: Duration,
    /// Longest JWT-SVID lifetime.
    jwt_svid_ttl: Duration,
}

// === impl Schedule ===

impl Schedule {
    /// The schedule `rotation` sets for a CA issuing with `limits`.
    pub fn new(rotation: RotationConfig, limits: &AuthorityConfig) -> Self {
        Self {
            rotation,
            x509_svid_ttl: limits
                .max_x509_ttl
                .max(limits.default_x509_ttl)
                .max(limits.agent_ttl),
            jwt_svid_ttl: limits.max_jwt_ttl.max(limits.default_jwt_ttl),
        }
    }

    /// The configuration this schedule follows.
    pub fn config(&self) -> &RotationConfig {
        &self.rotation
    }

    /// When the successor of `active` is due to be prepared.
    pub fn prepare_at(&self, active: &KeySlot) -> SystemTime {
        if active.tainted {
            return active.prepared_at;
        }
        active.not_before + self.rotation.prepare_at.of(life(active))
    }

    /// When `prepared` may be activated at the earliest: once it has
    /// propagated ([`Schedule::propagated_at`]).
    pub fn propagated_at(&self, prepared: &KeySlot) -> SystemTime {
        prepared.prepared_at + self.rotation.propagation_delay
    }

    /// When `prepared` is due to replace `active` (a self-managed key):
    /// at `activate_at` of the active key's life (at once when it is
    /// tainted or there is none), and never before it has propagated.
    pub fn activate_at(&self, active: Option<&KeySlot>, prepared: &KeySlot) -> SystemTime {
        let planned = match active {
            Some(a) if !a.tainted => a.not_before + self.rotation.activate_at.of(life(a)),
            _ => prepared.prepared_at,
        };
        planned.max(self.propagated_at(prepared))
    }

    /// Until when a slot of `kind` retired at `retired_at` stays in the
    /// bundle: the longest SVID it could have signed has expired by then.
    pub fn publish_until(&self, kind: KeyKind, retired_at: SystemTime) -> SystemTime {
        retired_at
            + match kind {
                KeyKind::X509 => self.x509_svid_ttl,
                KeyKind::Jwt => self.jwt_svid_ttl,
            }
    }

    /// How long before `slot` expires a warning is due: `warn_before`,
    /// clamped to half the slot's life (short-lived test CAs).
    pub fn warn_before(&self, slot: &KeySlot) -> Duration {
        self.rotation.warn_before.min(life(slot) / 2)
    }
}

/// `not_after − not_before` (zero if inverted).
fn life(slot: &KeySlot) -> Duration {
    slot.not_after
        .duration_since(slot.not_before)
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rotation::journal::tests::{schedule, slot};
    use crate::store::SlotState;

    #[test]
    fn prepare_at_half_activate_at_five_sixths_never_before_propagation() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = schedule();
        let active = slot("a", KeyKind::X509, 1, SlotState::Active, t0, 600);
        assert_eq!(s.prepare_at(&active), t0 + Duration::from_secs(300));
        let mut prepared = slot("a", KeyKind::X509, 2, SlotState::Prepared, t0, 600);
        prepared.prepared_at = t0 + Duration::from_secs(300);
        assert_eq!(
            s.activate_at(Some(&active), &prepared),
            t0 + Duration::from_secs(500)
        );
        // Prepared late (e.g. the CA was down): propagation still comes first.
        prepared.prepared_at = t0 + Duration::from_secs(490);
        assert_eq!(
            s.activate_at(Some(&active), &prepared),
            t0 + Duration::from_secs(520)
        );
    }

    #[test]
    fn a_tainted_key_is_followed_at_once_after_propagation() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = schedule();
        let mut active = slot("a", KeyKind::Jwt, 1, SlotState::Active, t0, 6000);
        active.tainted = true;
        assert_eq!(s.prepare_at(&active), active.prepared_at);
        let mut prepared = slot("a", KeyKind::Jwt, 2, SlotState::Prepared, t0, 6000);
        prepared.prepared_at = t0 + Duration::from_secs(10);
        assert_eq!(
            s.activate_at(Some(&active), &prepared),
            t0 + Duration::from_secs(40)
        );
    }

    #[test]
    fn retired_slots_are_published_for_the_longest_svid_and_warnings_clamp() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = schedule();
        assert_eq!(
            s.publish_until(KeyKind::X509, t0),
            t0 + Duration::from_secs(3600)
        );
        assert_eq!(
            s.publish_until(KeyKind::Jwt, t0),
            t0 + Duration::from_secs(3600)
        );
        let short = slot("a", KeyKind::X509, 1, SlotState::Active, t0, 120);
        assert_eq!(s.warn_before(&short), Duration::from_secs(60));
    }
}
