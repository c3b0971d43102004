//! One span per proxied HTTP request, and its OTLP/JSON form.
//!
//! The JSON mapping follows the OTLP specification: trace and span ids are
//! lower-case hex strings (not base64), 64-bit integers are decimal strings,
//! enums are their integer values.

use super::{Hop, hex};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::SystemTime;

/// Longest `url.path` attribute kept, in bytes; longer paths are cut.
pub const MAX_PATH_ATTR: usize = 1024;

/// OTLP span kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpanKind {
    /// The proxy received the request on behalf of the local application
    /// (inbound).
    Server,
    /// The proxy sent the request on behalf of the local application
    /// (outbound).
    Client,
}

/// A span whose request is in flight.
#[derive(Clone, Debug)]
pub struct PendingSpan {
    hop: Hop,
    kind: SpanKind,
    method: http::Method,
    path: String,
    start: SystemTime,
}

/// A finished span, ready to export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanRecord {
    /// 16-byte trace id.
    pub trace_id: [u8; 16],
    /// This hop's span id.
    pub span_id: [u8; 8],
    /// The caller's span id, if the request carried a `traceparent`.
    pub parent_span_id: Option<[u8; 8]>,
    /// Server (inbound) or client (outbound).
    pub kind: SpanKind,
    /// HTTP method.
    pub method: http::Method,
    /// Request path without the query (cut at [`MAX_PATH_ATTR`] bytes).
    pub path: String,
    /// Response status sent to the caller.
    pub status: u16,
    /// Verified source SPIFFE ID (inbound) or `local` (outbound).
    pub source_id: Arc<str>,
    /// `allow`, `deny` or `deny(audit)`.
    pub decision: &'static str,
    /// When the request arrived.
    pub start: SystemTime,
    /// When the response headers were ready.
    pub end: SystemTime,
}

// === impl SpanKind ===

impl SpanKind {
    /// The OTLP `SpanKind` enum value.
    pub fn otlp(self) -> u8 {
        match self {
            Self::Server => 2,
            Self::Client => 3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Server => "inbound",
            Self::Client => "outbound",
        }
    }
}

// === impl PendingSpan ===

impl PendingSpan {
    /// Starts a span for `hop`; the query string is not recorded (it may
    /// carry secrets).
    pub fn start(
        hop: Hop,
        kind: SpanKind,
        method: &http::Method,
        uri: &http::Uri,
        now: SystemTime,
    ) -> Self {
        let mut path = uri.path();
        if path.len() > MAX_PATH_ATTR {
            let mut end = MAX_PATH_ATTR;
            while !path.is_char_boundary(end) {
                end -= 1;
            }
            path = &path[..end];
        }
        Self {
            hop,
            kind,
            method: method.clone(),
            path: path.to_owned(),
            start: now,
        }
    }

    /// Ends the span with the response `status`.
    pub fn finish(
        self,
        status: u16,
        source_id: Arc<str>,
        decision: &'static str,
        now: SystemTime,
    ) -> SpanRecord {
        SpanRecord {
            trace_id: self.hop.ctx.trace_id,
            span_id: self.hop.ctx.span_id,
            parent_span_id: self.hop.parent_span_id,
            kind: self.kind,
            method: self.method,
            path: self.path,
            status,
            source_id,
            decision,
            start: self.start,
            end: now.max(self.start),
        }
    }
}

// === impl SpanRecord ===

impl SpanRecord {
    /// Error status: a 5xx, a refused request, or a 4xx seen by a client span.
    pub fn is_error(&self) -> bool {
        self.status >= 500
            || self.decision == "deny"
            || (self.kind == SpanKind::Client && self.status >= 400)
    }

    /// The OTLP/JSON `Span` object.
    pub fn to_otlp_json(&self) -> Value {
        let str_attr = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
        json!({
            "traceId": hex(&self.trace_id),
            "spanId": hex(&self.span_id),
            "parentSpanId": self.parent_span_id.map(|p| hex(&p)).unwrap_or_default(),
            "name": format!("{} {}", self.kind.name(), self.method),
            "kind": self.kind.otlp(),
            "startTimeUnixNano": unix_nanos(self.start),
            "endTimeUnixNano": unix_nanos(self.end),
            "attributes": [
                str_attr("http.request.method", self.method.as_str()),
                str_attr("url.path", &self.path),
                {"key": "http.response.status_code", "value": {"intValue": self.status.to_string()}},
                str_attr("meshid.source_id", &self.source_id),
                str_attr("meshid.decision", self.decision),
            ],
            "status": {"code": if self.is_error() { 2 } else { 1 }},
        })
    }
}

/// Nanoseconds since the Unix epoch as a decimal string (0 before it).
fn unix_nanos(t: SystemTime) -> String {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::trace::TraceContext;
    use std::time::Duration;

    #[test]
    fn json_uses_hex_ids_and_decimal_strings() {
        let parent =
            TraceContext::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .unwrap();
        let hop = Hop {
            ctx: parent.child(),
            parent_span_id: Some(parent.span_id),
        };
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let uri: http::Uri = "/a/b?token=secret".parse().unwrap();
        let span = PendingSpan::start(hop, SpanKind::Client, &http::Method::GET, &uri, t0).finish(
            503,
            "local".into(),
            "allow",
            t0 + Duration::from_millis(2),
        );
        let v = span.to_otlp_json();
        assert_eq!(v["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(v["spanId"], hex(&hop.ctx.span_id));
        assert_eq!(v["name"], "outbound GET");
        assert_eq!(v["kind"], 3);
        assert_eq!(v["startTimeUnixNano"], "1700000000123456789");
        assert_eq!(v["endTimeUnixNano"], "1700000000125456789");
        assert_eq!(v["attributes"][1]["value"]["stringValue"], "/a/b");
        assert_eq!(v["attributes"][2]["value"]["intValue"], "503");
        assert_eq!(v["status"]["code"], 2);
    }

    #[test]
    fn root_span_has_empty_parent_and_long_paths_are_cut() {
        let hop = Hop {
            ctx: TraceContext::new_root(),
            parent_span_id: None,
        };
        let uri: http::Uri = format!("/{}", "ab".repeat(MAX_PATH_ATTR)).parse().unwrap();
        let now = SystemTime::now();
        let span = PendingSpan::start(hop, SpanKind::Server, &http::Method::POST, &uri, now)
            .finish(403, "spiffe://example.org/a".into(), "deny", now);
        assert_eq!(span.path.len(), MAX_PATH_ATTR);
        let v = span.to_otlp_json();
        assert_eq!(v["parentSpanId"], "");
        assert_eq!(v["kind"], 2);
        assert_eq!(v["status"]["code"], 2, "a refused request is an error");
    }
}
