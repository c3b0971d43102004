//! Prometheus metrics of the Unix-socket listeners.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Refusal;

/// The metric families, registered once per process; each listener gets a
/// [`ListenerMetrics`] view with its `listener` label.
#[derive(Debug, Clone, Default)]
pub struct UdsMetrics {
    open: Family<ListenerLabel, Gauge>,
    refused: Family<ReasonLabels, Counter>,
    timed_out: Family<ReasonLabels, Counter>,
    authority_rewritten: Family<ListenerLabel, Counter>,
}

/// The metrics of one listener.
#[derive(Debug, Clone)]
pub struct ListenerMetrics {
    listener: &'static str,
    all: UdsMetrics,
    open: Gauge,
    authority_rewritten: Counter,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    listener: &'static str,
    reason: &'static str,
}

// === impl UdsMetrics ===

impl UdsMetrics {
    /// Registers the families in `registry` (names start with `uds_`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "uds_connections_open",
            "Connections open on a Unix-socket listener",
            m.open.clone(),
        );
        registry.register(
            "uds_connections_refused",
            "Connections closed at accept, by reason (max_connections, max_connections_per_uid, no_peer_credentials, accept_failed)",
            m.refused.clone(),
        );
        registry.register(
            "uds_connections_timed_out",
            "Connections closed by a timeout, by reason (handshake, idle)",
            m.timed_out.clone(),
        );
        registry.register(
            "uds_authority_rewritten",
            "Requests whose :authority (a socket path) was replaced by localhost",
            m.authority_rewritten.clone(),
        );
        m
    }

    /// The metrics of the listener named `listener` (e.g. `workload_api`).
    pub fn listener(&self, listener: &'static str) -> ListenerMetrics {
        let label = ListenerLabel { listener };
        ListenerMetrics {
            listener,
            all: self.clone(),
            open: self.open.get_or_create(&label).clone(),
            authority_rewritten: self.authority_rewritten.get_or_create(&label).clone(),
        }
    }
}

// === impl ListenerMetrics ===

impl ListenerMetrics {
    /// Metrics that go nowhere (tests, servers without a registry).
    pub fn unregistered(listener: &'static str) -> Self {
        UdsMetrics::default().listener(listener)
    }

    pub(crate) fn opened(&self) {
        self.open.inc();
    }

    pub(crate) fn closed(&self) {
        self.open.dec();
    }

    pub(crate) fn refused(&self, reason: Refusal) {
        self.reason(&self.all.refused, reason.as_str());
    }

    pub(crate) fn timed_out(&self, reason: &'static str) {
        self.reason(&self.all.timed_out, reason);
    }

    pub(crate) fn authority_rewritten(&self, n: u64) {
        self.authority_rewritten.inc_by(n);
    }

    fn reason(&self, family: &Family<ReasonLabels, Counter>, reason: &'static str) {
        family
            .get_or_create(&ReasonLabels {
                listener: self.listener,
                reason,
            })
            .inc();
    }
}
