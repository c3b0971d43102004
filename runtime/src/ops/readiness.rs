//! The readiness seam: each component says whether it can do its job.

use std::fmt;

use futures::future::BoxFuture;

/// Whether a component is ready to serve, answered on every `/readyz`.
///
/// The CA is ready when it can issue SVIDs agents verify, the agent when it
/// has its identity and a first sync, the proxy when it has an identity.
/// A check that may block (a database round trip) bounds itself or is
/// bounded by the server's [`request_timeout`](super::OpsLimits::request_timeout).
pub trait Readiness: Send + Sync + 'static {
    /// `Ok(())` when ready; otherwise every reason it is not.
    fn check(&self) -> BoxFuture<'_, Result<(), NotReady>>;
}

/// A [`Readiness`] from a synchronous check (see [`from_fn`]).
pub struct FnReadiness<F>(F);

/// Readiness from a cheap synchronous check (reads a watch or a flag).
pub fn from_fn<F>(check: F) -> FnReadiness<F>
where
    F: Fn() -> Result<(), NotReady> + Send + Sync + 'static,
{
    FnReadiness(check)
}

/// Why a component is not ready: one or more reasons, each one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    reasons: Vec<String>,
}

// === impl FnReadiness ===

impl<F> Readiness for FnReadiness<F>
where
    F: Fn() -> Result<(), NotReady> + Send + Sync + 'static,
{
    fn check(&self) -> BoxFuture<'_, Result<(), NotReady>> {
        let result = (self.0)();
        Box::pin(async move { result })
    }
}

impl<F> fmt::Debug for FnReadiness<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnReadiness")
    }
}

// === impl NotReady ===

impl NotReady {
    /// Not ready for one reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reasons: vec![reason.into()],
        }
    }

    /// Collects reasons; `Ok(())` when there are none.
    pub fn from_reasons(reasons: Vec<String>) -> Result<(), Self> {
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(Self { reasons })
        }
    }

    /// The reasons, in the order they were found.
    pub fn reasons(&self) -> &[String] {
        &self.reasons
    }

    /// The `/readyz` body: each reason on its own line.
    pub(crate) fn body(&self) -> String {
        let mut out = String::new();
        for r in &self.reasons {
            out.push_str(r.trim_end());
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reasons.join("; "))
    }
}

impl std::error::Error for NotReady {}
