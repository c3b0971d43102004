//! What the protocol handlers of a connection get: the state every
//! listener shares ([`Shared`]) and what is known about the client
//! ([`Peer`]).

use crate::access_log::AccessLog;
use crate::authz::Verdict;
use crate::config::{ConnectionLimits, Mode};
use crate::drain::Drain;
use crate::metrics::Metrics;
use crate::policy::{Decision, PolicySet};
use crate::tls::TlsStore;
use crate::trace::SpanExporter;
use arc_swap::ArcSwap;
use meshid_identity::SpiffeId;
use std::sync::Arc;

/// Shared by every listener and connection.
#[derive(Debug)]
pub struct Shared {
    /// Latest TLS configs.
    pub tls: TlsStore,
    /// Latest policy set.
    pub policy: Arc<ArcSwap<PolicySet>>,
    /// Enforce or audit.
    pub mode: Mode,
    /// Metrics.
    pub metrics: Metrics,
    /// Access log.
    pub access_log: AccessLog,
    /// Drain signal and connection tracking.
    pub drain: Drain,
    /// Span export; `None` when no OTLP endpoint is configured.
    pub spans: Option<SpanExporter>,
    /// Connection cap and timeouts.
    pub limits: ConnectionLimits,
}

/// What is known about the client connection.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The verified SPIFFE ID, if any.
    pub id: Option<SpiffeId>,
    /// Label for logs and metrics.
    pub label: Arc<str>,
}

// === impl Shared ===

impl Shared {
    /// Applies the mode to a policy decision.
    pub fn verdict(&self, d: &Decision) -> Verdict {
        Verdict::of(d, self.mode)
    }
}
