//! Prometheus metrics of the CA (served on the ops endpoint's `/metrics`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::StoreMetrics;

mod rotation;

pub use rotation::RotationMetrics;

/// Labels of the signature counter: `kind` (`x509`, `jwt`, `agent`) and
/// `result` (`ok`, `denied`, `invalid`, `error`).
pub type SignatureLabels = [(&'static str, &'static str); 2];

/// The CA's metrics, cheap to clone.
#[derive(Debug, Clone)]
pub struct CaMetrics {
    registry: Arc<Registry>,
    signatures: Family<SignatureLabels, Counter>,
    signing_latency: Histogram,
    signing_errors: Family<[(&'static str, &'static str); 1], Counter>,
    /// The store's call latency, errors and row counts.
    pub store: StoreMetrics,
    /// The earliest notAfter of the CA chain, Unix seconds.
    pub ca_expiry: Gauge,
    upstream_reloads: Family<[(&'static str, &'static str); 1], Counter>,
    upstream_reload_failing: Gauge,
    upstream_renewals: Family<[(&'static str, &'static str); 1], Counter>,
    /// Key expiry and rotation steps.
    pub rotation: RotationMetrics,
}

// === impl CaMetrics ===

impl CaMetrics {
    /// Creates and registers every metric under the `meshid_ca_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("meshid_ca");
        let signatures = Family::<SignatureLabels, Counter>::default();
        let signing_latency = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let ca_expiry = Gauge::default();
        let signing_errors = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register(
            "signatures",
            "SVIDs signed, by kind and result",
            signatures.clone(),
        );
        registry.register(
            "signing_latency_seconds",
            "Time to verify a CSR and sign one X.509-SVID",
            signing_latency.clone(),
        );
        registry.register(
            "signing_errors",
            "Signatures the CA key's backend failed to make (the caller got UNAVAILABLE), by backend",
            signing_errors.clone(),
        );
        let store = StoreMetrics::register(&mut registry);
        registry.register(
            "cert_expiry_timestamp_seconds",
            "Earliest notAfter of the CA chain: signing certificate up to the root (Unix time)",
            ca_expiry.clone(),
        );
        let upstream_reloads = Family::default();
        registry.register(
            "upstream_reloads",
            "Replaced upstream intermediates seen on disk, by result (applied, rejected)",
            upstream_reloads.clone(),
        );
        let upstream_reload_failing = Gauge::default();
        registry.register(
            "upstream_reload_failing",
            "1 while the upstream files on disk are refused (the CA keeps signing with the previous intermediate)",
            upstream_reload_failing.clone(),
        );
        let upstream_renewals = Family::default();
        registry.register(
            "upstream_renewals",
            "Intermediates asked of the upstream meshid CA, by result (applied, failed)",
            upstream_renewals.clone(),
        );
        let rotation = RotationMetrics::register(&mut registry);
        Self {
            rotation,
            upstream_renewals,
            registry: Arc::new(registry),
            signatures,
            signing_latency,
            signing_errors,
            store,
            ca_expiry,
            upstream_reloads,
            upstream_reload_failing,
        }
    }

    /// Counts one signature attempt.
    pub fn signature(&self, kind: &'static str, result: &'static str) {
        self.signatures
            .get_or_create(&[("kind", kind), ("result", result)])
            .inc();
    }

    /// Records one signing duration.
    pub fn signing_latency(&self, took: Duration) {
        self.signing_latency.observe(took.as_secs_f64());
    }

    /// Counts one signature the key's backend (`pkcs11`) failed to make.
    pub fn signing_error(&self, backend: &'static str) {
        self.signing_errors
            .get_or_create(&[("backend", backend)])
            .inc();
    }

    /// Sets the CA expiry gauge.
    pub fn set_ca_expiry(&self, not_after: SystemTime) {
        let secs = not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.ca_expiry.set(secs);
    }

    /// Counts one replaced intermediate: `applied` or `rejected`.
    pub fn upstream_reload(&self, result: &'static str) {
        self.upstream_reloads
            .get_or_create(&[("result", result)])
            .inc();
    }

    /// Whether the upstream files on disk are refused right now.
    pub fn set_upstream_reload_failing(&self, failing: bool) {
        self.upstream_reload_failing.set(i64::from(failing));
    }

    /// Counts one intermediate asked of the upstream meshid CA (`applied`
    /// or `failed`).
    pub fn upstream_renewal(&self, result: &'static str) {
        self.upstream_renewals
            .get_or_create(&[("result", result)])
            .inc();
    }

    /// See [`RotationMetrics::set_bundle_authority_expiry`].
    pub fn set_bundle_authority_expiry(&self, authorities: &[(String, SystemTime)]) {
        self.rotation.set_bundle_authority_expiry(authorities);
    }

    /// See [`RotationMetrics::set_key_expiry`].
    pub fn set_key_expiry(&self, keys: &[(&'static str, &'static str, SystemTime)]) {
        self.rotation.set_key_expiry(keys);
    }

    /// Counts one rotation step of `kind` (`x509`, `jwt`).
    pub fn rotation_step(&self, kind: &'static str, step: &'static str) {
        self.rotation.step(kind, step);
    }

    /// The registry every CA metric is in (served on `/metrics`).
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for CaMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_by_label() {
        let m = CaMetrics::new();
        m.signature("x509", "ok");
        m.signature("x509", "ok");
        m.signature("x509", "denied");
        let text = m.encode();
        assert!(
            text.contains("meshid_ca_signatures_total{kind=\"x509\",result=\"ok\"} 2"),
            "{text}"
        );
        assert!(text.contains("result=\"denied\"} 1"));
    }
}
