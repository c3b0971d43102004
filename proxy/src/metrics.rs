//! Prometheus metrics of the proxy (prometheus-client).
//!
//! Label values are `&'static str` or shared `Arc<str>`, so recording a
//! request does not allocate once its label set exists.
//!
//! Callers pass the verdict as one word (`allow`, `deny`, `deny(audit)`,
//! `error`, as in the access log); the series split it into `decision`
//! (`allow`, `deny`, `error`) and `mode` (`enforce`, `audit`: the proxy's
//! policy mode), so `decision="deny"` counts every policy denial and
//! `mode="audit"` tells which of them were let through.

mod reload;

pub use reload::{ReloadLabels, ReloadMetrics};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::{Arc, OnceLock};

use crate::config::Mode;
use std::time::{Duration, SystemTime};

/// Traffic direction label.
pub type Direction = &'static str;
/// Inbound (mTLS-terminating) traffic.
pub const INBOUND: Direction = "inbound";
/// Outbound (mTLS-originating) traffic.
pub const OUTBOUND: Direction = "outbound";

/// Labels of a request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    direction: Direction,
    source: Arc<str>,
    destination: Arc<str>,
    decision: &'static str,
    mode: &'static str,
    status_class: &'static str,
}

/// What a caller says about one connection (see [`Metrics::connection`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnLabels {
    /// `inbound` or `outbound`.
    pub direction: Direction,
    /// Verified source SPIFFE ID (inbound) or `local` (outbound).
    pub source: Arc<str>,
    /// Destination address or SPIFFE ID.
    pub destination: Arc<str>,
    /// `allow`, `deny`, `deny(audit)`, `error` (not forwarded), or `-`
    /// for HTTP connections (decided per request).
    pub decision: &'static str,
}

/// The labels of a connection series: [`ConnLabels`] with the verdict
/// split into `decision` and `mode`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnSeries {
    direction: Direction,
    source: Arc<str>,
    destination: Arc<str>,
    decision: &'static str,
    mode: &'static str,
}

/// Labels of the handshake counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: Direction,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    /// `inbound` or `outbound`.
    pub direction: Direction,
    /// `2xx`, `4xx`, ... or `error`.
    pub status_class: &'static str,
}

/// Labels of TLS handshake failures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsErrorLabels {
    /// `inbound` or `outbound`.
    pub direction: Direction,
    /// See [`crate::tls::handshake_error_reason`].
    pub reason: &'static str,
}

/// Labels of the inbound peer authentication counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerAuthLabels {
    /// The listener's mode: `STRICT`, `PERMISSIVE` or `DISABLE`.
    pub peer_authentication: &'static str,
    /// `mtls` (client SVID verified) or `plaintext`.
    pub transport: &'static str,
}

/// Labels of the per-listener connection metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// `inbound` or `outbound`.
    pub direction: Direction,
    /// The configured listen address.
    pub listen: String,
}

/// Every metric the proxy records.
#[derive(Clone, Debug)]
pub struct Metrics {
    listener_open: Family<ListenerLabels, Gauge>,
    listener_refused: Family<ListenerLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    connections: Family<ConnSeries, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    tls_errors: Family<TlsErrorLabels, Counter>,
    handshakes: Family<DirectionLabels, Counter>,
    peer_auth: Family<PeerAuthLabels, Counter>,
    cert_expiry: Gauge<i64>,
    /// `enforce` or `audit`: the `mode` label of every series.
    mode: &'static str,
}

// === impl Metrics ===

impl Metrics {
    /// Creates the metrics and registers them under `meshid_proxy_` in
    /// `reg`; `mode` is the proxy's policy mode (the `mode` label).
    pub fn register(reg: &mut Registry, mode: Mode) -> Self {
        let m = Self {
            listener_open: Family::default(),
            listener_refused: Family::default(),
            requests: Family::default(),
            connections: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new([
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
            }),
            tls_errors: Family::default(),
            handshakes: Family::default(),
            peer_auth: Family::default(),
            cert_expiry: Gauge::default(),
            mode: match mode {
                Mode::Audit => "audit",
                _ => "enforce",
            },
        };
        let r = reg.sub_registry_with_prefix("meshid_proxy");
        r.register(
            "requests",
            "HTTP requests by source, destination, decision, policy mode and status class",
            m.requests.clone(),
        );
        r.register(
            "connections",
            "Connections by source, destination, decision and policy mode",
            m.connections.clone(),
        );
        r.register(
            "request_duration_seconds",
            "HTTP request latency through the proxy",
            m.latency.clone(),
        );
        r.register(
            "tls_handshake_errors",
            "Failed TLS handshakes by reason",
            m.tls_errors.clone(),
        );
        r.register(
            "tls_handshakes",
            "Completed TLS handshakes",
            m.handshakes.clone(),
        );
        r.register(
            "inbound_peer_authentication",
            "Inbound connections let in, by the listener's peer authentication mode and transport (mtls, plaintext)",
            m.peer_auth.clone(),
        );
        r.register(
            "listener_connections",
            "Open connections per listener",
            m.listener_open.clone(),
        );
        r.register(
            "listener_connections_refused",
            "Connections closed at once because the listener was at connections.max_per_listener",
            m.listener_refused.clone(),
        );
        r.register(
            "cert_expiry_timestamp_seconds",
            "Unix time when the proxy's current SVID expires",
            m.cert_expiry.clone(),
        );
        m
    }

    /// A recorder for the requests of one connection: it looks each label
    /// set up once and then only increments, so a request costs no label
    /// hashing or map lock.
    pub fn recorder(
        &self,
        direction: Direction,
        source: Arc<str>,
        destination: Arc<str>,
    ) -> RequestRecorder {
        RequestRecorder {
            metrics: self.clone(),
            direction,
            source,
            destination,
            slots: Default::default(),
        }
    }

    /// The open-connection gauge and the refused-connection counter of
    /// one listener (for its connection cap).
    pub fn listener(&self, direction: Direction, listen: std::net::SocketAddr) -> (Gauge, Counter) {
        let labels = ListenerLabels {
            direction,
            listen: listen.to_string(),
        };
        (
            self.listener_open.get_or_create(&labels).clone(),
            self.listener_refused.get_or_create(&labels).clone(),
        )
    }

    /// Counts one accepted connection.
    pub fn connection(&self, labels: &ConnLabels) {
        let (decision, mode) = self.split(labels.decision);
        self.connections
            .get_or_create(&ConnSeries {
                direction: labels.direction,
                source: labels.source.clone(),
                destination: labels.destination.clone(),
                decision,
                mode,
            })
            .inc();
    }

    /// Counts one completed handshake.
    pub fn handshake(&self, direction: Direction) {
        self.handshakes
            .get_or_create(&DirectionLabels { direction })
            .inc();
    }

    /// Counts one inbound connection let in under `mode`, over mTLS or
    /// plaintext.
    pub fn peer_authentication(&self, mode: &'static str, mtls: bool) {
        let transport = if mtls { "mtls" } else { "plaintext" };
        self.peer_auth
            .get_or_create(&PeerAuthLabels {
                peer_authentication: mode,
                transport,
            })
            .inc();
    }

    /// Counts one failed handshake.
    pub fn tls_error(&self, direction: Direction, reason: &'static str) {
        self.tls_errors
            .get_or_create(&TlsErrorLabels { direction, reason })
            .inc();
    }

    /// Records when the current SVID expires.
    pub fn set_cert_expiry(&self, not_after: SystemTime) {
        let secs = not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.cert_expiry.set(secs);
    }

    /// `decision` and `mode` labels of a verdict word: `deny(audit)` is a
    /// `deny` in `audit` mode; anything else is itself in the proxy's mode.
    fn split(&self, verdict: &'static str) -> (&'static str, &'static str) {
        match verdict {
            AUDIT_DENY => ("deny", "audit"),
            v => (v, self.mode),
        }
    }
}

/// The decision label of traffic the proxy could not forward (upstream
/// connection or TLS failure), whatever the policy said.
pub const ERROR_DECISION: &str = "error";
/// The verdict word of a denial let through in audit mode.
const AUDIT_DENY: &str = "deny(audit)";
/// Verdict words, in slot order.
const DECISIONS: [&str; 4] = ["allow", "deny", AUDIT_DENY, ERROR_DECISION];
/// Status classes, in slot order.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Records the requests of one connection (see [`Metrics::recorder`]).
#[derive(Debug)]
pub struct RequestRecorder {
    metrics: Metrics,
    direction: Direction,
    source: Arc<str>,
    destination: Arc<str>,
    slots: [[OnceLock<(Counter, Histogram)>; CLASSES.len()]; DECISIONS.len()],
}

impl RequestRecorder {
    /// Counts one finished request; `decision` is the verdict word
    /// (`allow`, `deny`, `deny(audit)`, `error`).
    pub fn record(&self, decision: &'static str, status: u16, elapsed: Duration) {
        let d = DECISIONS.iter().position(|x| *x == decision);
        let c = class_index(status);
        let Some(slot) = d.and_then(|d| self.slots.get(d)).and_then(|s| s.get(c)) else {
            return;
        };
        let (count, latency) = slot.get_or_init(|| {
            let (decision, mode) = self.metrics.split(decision);
            let labels = RequestLabels {
                direction: self.direction,
                source: self.source.clone(),
                destination: self.destination.clone(),
                decision,
                mode,
                status_class: CLASSES[c],
            };
            let count = self.metrics.requests.get_or_create(&labels).clone();
            let latency = self
                .metrics
                .latency
                .get_or_create(&LatencyLabels {
                    direction: self.direction,
                    status_class: CLASSES[c],
                })
                .clone();
            (count, latency)
        });
        count.inc();
        latency.observe(elapsed.as_secs_f64());
    }
}

fn class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
