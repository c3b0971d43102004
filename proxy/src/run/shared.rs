//! State every listener shares: TLS, policy, mode, metrics, logs, drain.

use crate::access_log::AccessLog;
use crate::config::Mode;
use crate::metrics::Metrics;
use crate::policy::{Decision, PolicySet};
use crate::tls::TlsStore;
use arc_swap::ArcSwap;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

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
    pub spans: Option<crate::trace::SpanExporter>,
    /// Connection cap and timeouts.
    pub limits: crate::config::ConnectionLimits,
}

/// The outcome of authorization after applying the mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed by policy.
    Allow,
    /// Denied and refused.
    Deny,
    /// Denied by policy but let through (audit mode).
    DenyAudit,
}

// === impl Shared ===

impl Shared {
    /// Applies the mode to a policy decision.
    pub fn verdict(&self, d: &Decision) -> Verdict {
        match (d.allowed, self.mode) {
            (true, _) => Verdict::Allow,
            (false, Mode::Audit) => Verdict::DenyAudit,
            (false, _) => Verdict::Deny,
        }
    }
}

// === impl Verdict ===

impl Verdict {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::DenyAudit => "deny(audit)",
        }
    }
}

/// The deciding rule as `policy[rules[i]]`.
pub fn rule_label(d: &Decision) -> Option<String> {
    match (&d.policy, d.rule_index) {
        (Some(p), Some(i)) => Some(format!("{p}[rules[{i}]]")),
        (Some(p), None) => Some(p.to_string()),
        _ => None,
    }
}

/// Shutdown signal plus a count of live connections.
///
/// Each connection holds a [`DrainGuard`]; [`DrainHandle::drain`] returns
/// when every guard is dropped.
#[derive(Clone, Debug)]
pub struct Drain {
    signal: watch::Receiver<bool>,
    live: mpsc::Sender<()>,
}

/// Held by a connection while it is open.
#[derive(Debug)]
pub struct DrainGuard {
    _live: mpsc::Sender<()>,
}

/// Owned by `run`: starts the drain and waits for it.
#[derive(Debug)]
pub struct DrainHandle {
    signal: watch::Sender<bool>,
    live: mpsc::Receiver<()>,
}

// === impl Drain ===

impl Drain {
    /// A new drain and its handle.
    pub fn new() -> (Self, DrainHandle) {
        let (stx, srx) = watch::channel(false);
        let (ltx, lrx) = mpsc::channel(1);
        (
            Self {
                signal: srx,
                live: ltx,
            },
            DrainHandle {
                signal: stx,
                live: lrx,
            },
        )
    }

    /// Marks one live connection.
    pub fn guard(&self) -> DrainGuard {
        DrainGuard {
            _live: self.live.clone(),
        }
    }

    /// Resolves once draining starts.
    pub async fn signaled(&self) {
        let mut rx = self.signal.clone();
        let _ = rx.wait_for(|d| *d).await;
    }
}

// === impl DrainHandle ===

impl DrainHandle {
    /// Tells listeners to stop and connections to finish, then waits until
    /// all are gone. `keep` (the caller's own [`Drain`]) is dropped first.
    pub async fn drain(mut self, keep: Drain) {
        drop(keep);
        self.signal.send_replace(true);
        while self.live.recv().await.is_some() {}
    }
}
