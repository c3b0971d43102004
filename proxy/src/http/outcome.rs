//! [`RequestOutcome`]: what happened to one request, filled in by the
//! stages (authorize, trace, forward) and consumed by `record`.

use crate::authz::Verdict;
use crate::metrics::ERROR_DECISION;
use crate::trace::TraceContext;
use http::{Method, Request, StatusCode, Uri, Version};
use std::time::{Duration, Instant};

/// The request line as the client sent it (before any rewrite), kept only
/// when the access log is on.
#[derive(Debug)]
pub struct RequestLine {
    /// Method.
    pub method: Method,
    /// URI as received.
    pub uri: Uri,
    /// The client's HTTP version.
    pub version: Version,
}

/// What was decided about one request and what came of it.
#[derive(Debug)]
pub struct RequestOutcome {
    /// When the proxy started handling the request.
    started: Instant,
    /// The request line, if the access log wants it.
    pub line: Option<RequestLine>,
    /// The authorization verdict (`Allow` where nothing is authorized).
    pub verdict: Verdict,
    /// The deciding policy rule, if it is logged.
    pub rule: Option<String>,
    /// The trace the request belongs to, if anyone records it.
    pub trace: Option<TraceContext>,
    /// The status sent back to the client.
    pub status: StatusCode,
    /// Why the request could not be forwarded (then the decision is
    /// `error`, whatever the verdict).
    pub error: Option<&'static str>,
    /// Bytes received from the client (when the length was known).
    pub bytes_in: u64,
    /// Bytes sent back (when the length was known).
    pub bytes_out: u64,
}

// === impl RequestLine ===

impl RequestLine {
    /// The line of `req`.
    pub fn of<B>(req: &Request<B>) -> Self {
        Self {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
        }
    }
}

// === impl RequestOutcome ===

impl RequestOutcome {
    /// A request that arrived now and is allowed until a stage says
    /// otherwise.
    pub fn start(line: Option<RequestLine>) -> Self {
        Self {
            started: Instant::now(),
            line,
            verdict: Verdict::Allow,
            rule: None,
            trace: None,
            status: StatusCode::OK,
            error: None,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The decision label for metrics and the access log: `error` when the
    /// request could not be forwarded, else the verdict.
    pub fn decision(&self) -> &'static str {
        if self.error.is_some() {
            ERROR_DECISION
        } else {
            self.verdict.as_str()
        }
    }
}
