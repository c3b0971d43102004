//! Outcome of hot reloads of a file (policy, identity files).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of the reload counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok` (the new content is in force) or `rejected` (the previous
    /// content stays in force).
    pub result: &'static str,
}

/// Counts reloads of one file and whether the last one succeeded.
///
/// Cheap to clone; clones share the same series. Usable before it is
/// registered (tests, `meshid policy` tools).
#[derive(Clone, Debug, Default)]
pub struct ReloadMetrics {
    reloads: Family<ReloadLabels, Counter>,
    last_ok: Gauge,
}

// === impl ReloadMetrics ===

impl ReloadMetrics {
    /// New metrics; the last-reload gauge starts at 1 (the content loaded
    /// at start-up is in force).
    pub fn new() -> Self {
        let m = Self::default();
        m.last_ok.set(1);
        m
    }

    /// Registers `<prefix>_reloads_total{result}` and
    /// `<prefix>_last_reload_success` in `reg` (already under the
    /// caller's `meshid_proxy` prefix, if any).
    pub fn register(&self, reg: &mut Registry, prefix: &str, what: &str) {
        let r = reg.sub_registry_with_prefix(prefix);
        r.register(
            "reloads",
            format!("Reloads of the {what} by result (rejected: the previous one stays in force)"),
            self.reloads.clone(),
        );
        r.register(
            "last_reload_success",
            format!("1 if the newest {what} content was accepted, 0 if it was rejected"),
            self.last_ok.clone(),
        );
    }

    /// Records one accepted reload.
    pub fn accepted(&self) {
        self.reloads
            .get_or_create(&ReloadLabels { result: "ok" })
            .inc();
        self.last_ok.set(1);
    }

    /// Records one rejected reload (the previous content stays).
    pub fn rejected(&self) {
        self.reloads
            .get_or_create(&ReloadLabels { result: "rejected" })
            .inc();
        self.last_ok.set(0);
    }

    /// How many reloads had `result` (`ok` or `rejected`), for tests.
    pub fn count(&self, result: &'static str) -> u64 {
        self.reloads.get_or_create(&ReloadLabels { result }).get()
    }
}
