//! The key rotation metrics: when each authority in the bundle and each of
//! this replica's keys expires, and the rotation steps taken.

use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of the per-key gauges.
type KeyIdLabel = [(&'static str, String); 1];
/// `kind` and `state` (or `step`).
type KindLabels = [(&'static str, &'static str); 2];

/// The rotation metrics, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RotationMetrics {
    bundle_authority_expiry: Family<KeyIdLabel, Gauge>,
    key_expiry: Family<KindLabels, Gauge>,
    steps: Family<KindLabels, Counter>,
}

// === impl RotationMetrics ===

impl RotationMetrics {
    /// Registers them in `registry`.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let me = Self::default();
        registry.register(
            "bundle_authority_expiry_seconds",
            "notAfter (Unix time) of every X.509 authority in the served bundle, by key ID",
            me.bundle_authority_expiry.clone(),
        );
        registry.register(
            "key_expiry_seconds",
            "notAfter (Unix time) of this replica's active and prepared keys, by kind and state",
            me.key_expiry.clone(),
        );
        registry.register(
            "rotation_steps",
            "Key rotation steps taken by this replica, by kind and step (prepare, activate, \
             retire, taint, revoke)",
            me.steps.clone(),
        );
        me
    }

    /// Replaces the bundle authorities' expiry gauges: `(key ID, notAfter)`.
    pub fn set_bundle_authority_expiry(&self, authorities: &[(String, SystemTime)]) {
        self.bundle_authority_expiry.clear();
        for (key_id, not_after) in authorities {
            self.bundle_authority_expiry
                .get_or_create(&[("key_id", key_id.clone())])
                .set(unix(*not_after));
        }
    }

    /// Replaces the own keys' expiry gauges: `(kind, state, notAfter)`.
    pub fn set_key_expiry(&self, keys: &[(&'static str, &'static str, SystemTime)]) {
        self.key_expiry.clear();
        for (kind, state, not_after) in keys {
            self.key_expiry
                .get_or_create(&[("kind", *kind), ("state", *state)])
                .set(unix(*not_after));
        }
    }

    /// Counts one step.
    pub fn step(&self, kind: &'static str, step: &'static str) {
        self.steps
            .get_or_create(&[("kind", kind), ("step", step)])
            .inc();
    }
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
