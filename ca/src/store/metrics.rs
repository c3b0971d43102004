//! What [`MeteredStore`](super::MeteredStore) records: per-call latency and
//! errors by operation, and the row-count gauges.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::StoreError;

/// `op`: the [`Store`](super::Store) method.
type OpLabels = [(&'static str, &'static str); 1];
/// `op` and `kind` ([`StoreError::kind`]).
type ErrorLabels = [(&'static str, &'static str); 2];

/// The store's metrics, cheap to clone (clones share the values).
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    calls: Family<OpLabels, Histogram, fn() -> Histogram>,
    errors: Family<ErrorLabels, Counter>,
    /// Registration entries in the store.
    pub entries: Gauge,
    /// Attested agents in the store.
    pub agents: Gauge,
}

// === impl StoreMetrics ===

impl StoreMetrics {
    /// Creates the metrics and registers them in `registry`:
    /// `store_call_duration_seconds{op}`, `store_call_errors{op,kind}`,
    /// `entries` and `agents`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            calls: Family::new_with_constructor(latency_histogram),
            errors: Family::default(),
            entries: Gauge::default(),
            agents: Gauge::default(),
        };
        registry.register(
            "store_call_duration_seconds",
            "Time a store call took, by operation",
            metrics.calls.clone(),
        );
        registry.register(
            "store_call_errors",
            "Store calls that failed, by operation and error kind",
            metrics.errors.clone(),
        );
        registry.register(
            "entries",
            "Registration entries in the store",
            metrics.entries.clone(),
        );
        registry.register(
            "agents",
            "Attested agents in the store",
            metrics.agents.clone(),
        );
        metrics
    }

    /// Records one call of `op` that took `took` and failed with `error`.
    pub(crate) fn record(&self, op: &'static str, took: Duration, error: Option<&StoreError>) {
        self.calls
            .get_or_create(&[("op", op)])
            .observe(took.as_secs_f64());
        if let Some(e) = error {
            self.errors
                .get_or_create(&[("op", op), ("kind", e.kind())])
                .inc();
        }
    }
}

/// 100 µs to ~3.3 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}
