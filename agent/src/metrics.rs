//! The agent's Prometheus metrics.

use std::sync::atomic::AtomicU64;

use meshid_runtime::uds::UdsMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Metrics of the SVID manager and the CA connection.
#[derive(Debug, Clone, Default)]
pub struct AgentMetrics {
    /// SVIDs currently served.
    pub svids_cached: Gauge,
    /// Unix time of the next planned rotation (0 = none).
    pub next_rotation: Gauge,
    /// 1 when the last call to the CA succeeded.
    pub ca_reachable: Gauge,
    /// SVID issuances/rotations that failed.
    pub rotation_failures: Counter,
    /// SVIDs issued.
    pub svids_issued: Counter,
    /// SVIDs (the agent's own included) re-issued early because the CA
    /// rotated or tainted the key that signed them.
    pub svids_reissued: Family<ReasonLabel, Counter>,
    /// Full syncs that failed.
    pub sync_failures: Counter,
    /// Unix time of the last successful sync.
    pub last_sync: Gauge<f64, AtomicU64>,
    /// The Unix-socket listeners (Workload API, SDS): open, refused and
    /// timed-out connections, rewritten authorities.
    pub uds: UdsMetrics,
}

/// The `reason` label: `rotation` or `taint` ([`crate::reissue::Reason`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why the SVID was re-issued.
    pub reason: &'static str,
}

// === impl AgentMetrics ===

impl AgentMetrics {
    /// Counts one SVID re-issued early for `reason`.
    pub fn reissued(&self, reason: crate::reissue::Reason) {
        self.svids_reissued
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }
}

impl AgentMetrics {
    /// Creates the metrics and registers them under `meshid_agent_`.
    pub fn register(registry: &mut Registry) -> Self {
        let r = registry.sub_registry_with_prefix("meshid_agent");
        let m = Self {
            uds: UdsMetrics::register(r),
            ..Self::default()
        };
        r.register(
            "svids_cached",
            "X.509-SVIDs currently served",
            m.svids_cached.clone(),
        );
        r.register(
            "next_rotation_timestamp_seconds",
            "Unix time of the next planned SVID rotation",
            m.next_rotation.clone(),
        );
        r.register(
            "ca_reachable",
            "1 when the last CA call succeeded",
            m.ca_reachable.clone(),
        );
        r.register(
            "rotation_failures",
            "SVID issuances or rotations that failed",
            m.rotation_failures.clone(),
        );
        r.register("svids_issued", "X.509-SVIDs issued", m.svids_issued.clone());
        r.register(
            "svids_reissued",
            "SVIDs re-issued early because the CA rotated (reason=rotation) or tainted (reason=taint) their signing key",
            m.svids_reissued.clone(),
        );
        r.register(
            "sync_failures",
            "Syncs with the CA that failed",
            m.sync_failures.clone(),
        );
        r.register(
            "last_sync_timestamp_seconds",
            "Unix time of the last successful sync",
            m.last_sync.clone(),
        );
        m
    }
}
