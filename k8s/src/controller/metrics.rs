//! The controller's metrics (`meshid_k8s_*`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What a reconcile was about.
pub type Kind = &'static str;
/// Registration entries on the CA.
pub const ENTRIES: Kind = "entries";
/// The trust-bundle and policy ConfigMaps.
pub const CONFIGMAPS: Kind = "configmaps";
/// Template and federated trust domain status.
pub const STATUS: Kind = "status";
/// The injector's `caBundle`.
pub const WEBHOOK: Kind = "webhook";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    kind: Kind,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: Kind,
}

/// Every controller metric.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<KindLabels, Counter>,
    /// Entries with the controller's owner on the CA, as last known.
    pub entries_owned: Gauge,
    /// Changes waiting: entries to write (also those backing off) and
    /// ConfigMaps to repair.
    pub queue_depth: Gauge,
    /// 1 while this process holds the Lease.
    pub leader: Gauge,
}

// === impl Metrics ===

impl Metrics {
    /// New metrics registered in `registry` under `meshid_k8s`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("meshid_k8s");
        r.register(
            "reconciles",
            "Reconcile passes, by kind and result (ok, error)",
            m.reconciles.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconcile errors, by kind",
            m.errors.clone(),
        );
        r.register(
            "entries_owned",
            "Registration entries this controller owns on the CA",
            m.entries_owned.clone(),
        );
        r.register(
            "queue_depth",
            "Changes waiting to be written",
            m.queue_depth.clone(),
        );
        r.register(
            "leader",
            "1 while this controller holds the leader Lease",
            m.leader.clone(),
        );
        m
    }

    /// Counts one pass of `kind`.
    pub fn reconciled(&self, kind: Kind, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&ResultLabels { kind, result })
            .inc();
        if !ok {
            self.errors.get_or_create(&KindLabels { kind }).inc();
        }
    }
}
