//! The trace stage: join the request's W3C trace as one hop, propagate
//! `traceparent` upstream, and export a span when the request is done.
//!
//! Only a proxy that exports spans joins the trace (new span id, or a new
//! trace); otherwise `traceparent` passes through untouched, so the
//! application's spans never point at a parent nobody recorded.

use crate::authz::Verdict;
use crate::context::Peer;
use crate::metrics::{Direction, INBOUND};
use crate::trace::{Hop, PendingSpan, SpanExporter, SpanKind, TRACEPARENT, TraceContext};
use http::{Request, StatusCode};
use std::time::SystemTime;

/// This proxy's part in the trace of one request.
#[derive(Debug)]
pub struct TraceHop {
    /// The hop, when spans are exported.
    hop: Option<Hop>,
    /// The span being timed, when the trace is sampled.
    span: Option<PendingSpan>,
}

// === impl TraceHop ===

impl TraceHop {
    /// Joins the trace of `req` if `spans` are exported; a server span
    /// inbound, a client span outbound.
    pub fn join<B>(spans: Option<&SpanExporter>, direction: Direction, req: &Request<B>) -> Self {
        let Some(spans) = spans else {
            return Self {
                hop: None,
                span: None,
            };
        };
        let hop = Hop::from_headers(req.headers(), spans.sample_ratio());
        let kind = if direction == INBOUND {
            SpanKind::Server
        } else {
            SpanKind::Client
        };
        let span = hop
            .ctx
            .sampled()
            .then(|| PendingSpan::start(hop, kind, req.method(), req.uri(), SystemTime::now()));
        Self {
            hop: Some(hop),
            span,
        }
    }

    /// Writes this hop's `traceparent` into `req` (when it joined the
    /// trace) and returns the trace for the access log: this hop's, or
    /// with `log` the client's as received.
    pub fn propagate<B>(&self, req: &mut Request<B>, log: bool) -> Option<TraceContext> {
        match self.hop {
            Some(hop) => {
                hop.write(req.headers_mut());
                Some(hop.ctx)
            }
            None if log => req
                .headers()
                .get(TRACEPARENT)
                .and_then(|v| TraceContext::parse(v.as_bytes())),
            None => None,
        }
    }

    /// Exports the span (if one was started) with the final status.
    pub fn finish(
        self,
        spans: Option<&SpanExporter>,
        peer: &Peer,
        status: StatusCode,
        verdict: Verdict,
    ) {
        if let (Some(span), Some(exporter)) = (self.span, spans) {
            exporter.record(span.finish(
                status.as_u16(),
                peer.label.clone(),
                verdict.as_str(),
                SystemTime::now(),
            ));
        }
    }
}
