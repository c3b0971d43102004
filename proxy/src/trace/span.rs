//! One span per proxied HTTP request, and its OTLP form (the generated
//! `opentelemetry.proto.trace.v1.Span`; the wire encodings are the
//! exporter's business).

use super::Hop;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{self as otlp, SpanFlags, span, status};
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
    /// W3C trace flags of this hop (bit 0: sampled).
    pub flags: u8,
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
    /// The OTLP `SpanKind`.
    pub fn otlp(self) -> span::SpanKind {
        match self {
            Self::Server => span::SpanKind::Server,
            Self::Client => span::SpanKind::Client,
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
            flags: self.hop.ctx.flags,
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

    /// The OTLP `Span`. Its flags carry the W3C trace flags and say
    /// whether the parent is remote (it always is: it came in a
    /// `traceparent`).
    pub fn to_otlp(&self) -> otlp::Span {
        let str_attr = |key: &str, v: &str| attr(key, any_value::Value::StringValue(v.into()));
        let mut flags = u32::from(self.flags) | SpanFlags::ContextHasIsRemoteMask as u32;
        if self.parent_span_id.is_some() {
            flags |= SpanFlags::ContextIsRemoteMask as u32;
        }
        let code = if self.is_error() {
            status::StatusCode::Error
        } else {
            status::StatusCode::Ok
        };
        otlp::Span {
            trace_id: self.trace_id.to_vec(),
            span_id: self.span_id.to_vec(),
            parent_span_id: self.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
            flags,
            name: format!("{} {}", self.kind.name(), self.method),
            kind: self.kind.otlp().into(),
            start_time_unix_nano: unix_nanos(self.start),
            end_time_unix_nano: unix_nanos(self.end),
            attributes: vec![
                str_attr("http.request.method", self.method.as_str()),
                str_attr("url.path", &self.path),
                attr(
                    "http.response.status_code",
                    any_value::Value::IntValue(self.status.into()),
                ),
                str_attr("meshid.source_id", &self.source_id),
                str_attr("meshid.decision", self.decision),
            ],
            status: Some(otlp::Status {
                code: code.into(),
                message: String::new(),
            }),
            ..otlp::Span::default()
        }
    }
}

/// An OTLP attribute.
pub(super) fn attr(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// Nanoseconds since the Unix epoch (0 before it, saturating in 2554).
fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::trace::TraceContext;
    use std::time::Duration;

    fn string<'a>(span: &'a otlp::Span, key: &str) -> Option<&'a any_value::Value> {
        span.attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn continued_trace_keeps_ids_flags_and_drops_the_query() {
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
        let p = span.to_otlp();
        assert_eq!(p.trace_id, parent.trace_id);
        assert_eq!(p.parent_span_id, parent.span_id);
        assert_eq!(p.span_id, hop.ctx.span_id);
        assert_eq!(p.flags, 0x301, "sampled, remote parent");
        assert_eq!(p.name, "outbound GET");
        assert_eq!(p.kind(), span::SpanKind::Client);
        assert_eq!(p.start_time_unix_nano, 1_700_000_000_123_456_789);
        assert_eq!(p.end_time_unix_nano, 1_700_000_000_125_456_789);
        assert_eq!(
            string(&p, "url.path"),
            Some(&any_value::Value::StringValue("/a/b".into()))
        );
        assert_eq!(
            string(&p, "http.response.status_code"),
            Some(&any_value::Value::IntValue(503))
        );
        assert_eq!(p.status.unwrap().code(), status::StatusCode::Error);
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
        let p = span.to_otlp();
        assert!(p.parent_span_id.is_empty());
        assert_eq!(p.flags, 0x101, "sampled, no remote parent");
        assert_eq!(p.kind(), span::SpanKind::Server);
        assert_eq!(
            p.status.unwrap().code(),
            status::StatusCode::Error,
            "a refused request is an error"
        );
    }

    #[test]
    fn times_before_the_epoch_are_zero() {
        assert_eq!(
            unix_nanos(SystemTime::UNIX_EPOCH - Duration::from_secs(1)),
            0
        );
    }
}
