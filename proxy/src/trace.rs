//! W3C Trace Context (`traceparent`), used when spans are exported: continue
//! an incoming trace with a new span id for the proxy hop, or start a new
//! trace when none (or a malformed one) arrives. [`span`] records one span
//! per proxied request as an OTLP `Span`, [`otlp`] batches sampled spans off
//! the request path, and `collector` sends each batch over OTLP/gRPC or
//! OTLP/HTTP (protobuf or JSON).

mod collector;
pub mod otlp;
pub mod span;

pub use otlp::SpanExporter;
pub use span::{PendingSpan, SpanKind, SpanRecord};

use http::{HeaderMap, HeaderValue};

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";

/// This proxy's hop of a trace plus the span it continues, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The context sent upstream (new span id).
    pub ctx: TraceContext,
    /// The caller's span id from the incoming `traceparent`; `None` for a
    /// trace started here.
    pub parent_span_id: Option<[u8; 8]>,
}

/// One hop of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// 16-byte trace id, never all zero.
    pub trace_id: [u8; 16],
    /// 8-byte span id of this hop, never all zero.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

// === impl TraceContext ===

impl TraceContext {
    /// Parses a version-00 `traceparent` value; `None` if malformed.
    pub fn parse(v: &[u8]) -> Option<Self> {
        // 00-<32 hex>-<16 hex>-<2 hex>; future versions may append fields.
        if v.len() < 55
            || (v.len() > 55 && v[55] != b'-')
            || v[2] != b'-'
            || v[35] != b'-'
            || v[52] != b'-'
        {
            return None;
        }
        let version = hex_byte(&v[0..2])?;
        if version == 0xff || (version == 0 && v.len() != 55) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, b) in trace_id.iter_mut().enumerate() {
            *b = hex_byte(&v[3 + 2 * i..5 + 2 * i])?;
        }
        let mut span_id = [0u8; 8];
        for (i, b) in span_id.iter_mut().enumerate() {
            *b = hex_byte(&v[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&v[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// A fresh, sampled trace.
    pub fn new_root() -> Self {
        Self::new_root_sampled(1.0)
    }

    /// A fresh trace, sampled with probability `ratio` (decided from the
    /// trace id, so every hop that sees the same id decides the same way).
    pub fn new_root_sampled(ratio: f64) -> Self {
        let mut trace_id: [u8; 16] = rand::random();
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        Self {
            trace_id,
            span_id: new_span_id(),
            flags: u8::from(ratio_samples(&trace_id, ratio)),
        }
    }

    /// Whether the sampled flag (bit 0) is set.
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 == 0x01
    }

    /// The same trace with a new span id (this proxy's hop).
    pub fn child(self) -> Self {
        Self {
            span_id: new_span_id(),
            ..self
        }
    }

    /// Reads `traceparent` from `headers`, continues or starts a trace, and
    /// writes the new hop back so the upstream sees it.
    pub fn propagate(headers: &mut HeaderMap) -> Self {
        let hop = Hop::from_headers(headers, 1.0);
        hop.write(headers);
        hop.ctx
    }

    /// The `traceparent` value.
    pub fn encode(&self) -> [u8; 55] {
        let mut out = [b'-'; 55];
        out[0] = b'0';
        out[1] = b'0';
        write_hex(&self.trace_id, &mut out[3..35]);
        write_hex(&self.span_id, &mut out[36..52]);
        write_hex(&[self.flags], &mut out[53..55]);
        out
    }

    /// The trace id as 32 lower-case hex digits (for logs).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

// === impl Hop ===

impl Hop {
    /// Continues the trace of `headers`' `traceparent` (keeping its sampled
    /// flag), or starts one sampled with probability `sample_ratio`.
    /// Does not change `headers`; see [`Hop::write`].
    pub fn from_headers(headers: &HeaderMap, sample_ratio: f64) -> Self {
        match headers
            .get(TRACEPARENT)
            .and_then(|v| TraceContext::parse(v.as_bytes()))
        {
            Some(parent) => Self {
                ctx: parent.child(),
                parent_span_id: Some(parent.span_id),
            },
            None => Self {
                ctx: TraceContext::new_root_sampled(sample_ratio),
                parent_span_id: None,
            },
        }
    }

    /// Replaces `traceparent` in `headers` with this hop.
    pub fn write(&self, headers: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_bytes(&self.ctx.encode()) {
            headers.insert(TRACEPARENT, v);
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    write_hex(bytes, &mut out);
    out.into_iter().map(char::from).collect()
}

/// Trace-id-ratio sampling: the low 8 bytes of the id, read as an integer,
/// fall below `ratio` of the range.
fn ratio_samples(trace_id: &[u8; 16], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    // The cast saturates; precision loss only moves the threshold by 2^-53.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let threshold = (ratio * u64::MAX as f64) as u64;
    u64::from_be_bytes(low) < threshold
}

fn new_span_id() -> [u8; 8] {
    let mut id: [u8; 8] = rand::random();
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let d = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(d(two[0])? << 4 | d(two[1])?)
}

fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn round_trips_and_keeps_trace_id() {
        let ctx = TraceContext::parse(SAMPLE.as_bytes()).unwrap_or_else(TraceContext::new_root);
        assert_eq!(&ctx.encode()[..], SAMPLE.as_bytes());
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_static(SAMPLE));
        let hop = TraceContext::propagate(&mut h);
        assert_eq!(hop.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(hop.span_id, ctx.span_id);
        let sent = h
            .get(TRACEPARENT)
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default();
        assert_eq!(TraceContext::parse(&sent), Some(hop));
    }

    #[test]
    fn malformed_or_zero_starts_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            assert_eq!(TraceContext::parse(bad.as_bytes()), None, "{bad}");
        }
        let mut h = HeaderMap::new();
        let ctx = TraceContext::propagate(&mut h);
        assert_eq!(ctx.flags, 1);
        assert!(h.get(TRACEPARENT).is_some());
    }

    #[test]
    fn hop_keeps_parent_and_sampled_flag() {
        let mut h = HeaderMap::new();
        let unsampled = SAMPLE.replace("-01", "-00");
        h.insert(TRACEPARENT, HeaderValue::from_str(&unsampled).unwrap());
        let hop = Hop::from_headers(&h, 1.0);
        assert!(!hop.ctx.sampled());
        assert_eq!(
            hop.parent_span_id.map(|p| hex(&p)).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(
            h.get(TRACEPARENT).unwrap().to_str().unwrap(),
            unsampled,
            "read-only"
        );
        hop.write(&mut h);
        assert_eq!(
            TraceContext::parse(h.get(TRACEPARENT).unwrap().as_bytes()),
            Some(hop.ctx)
        );
    }

    #[test]
    fn root_sampling_follows_the_ratio() {
        let h = HeaderMap::new();
        for _ in 0..32 {
            let all = Hop::from_headers(&h, 1.0);
            assert!(all.ctx.sampled() && all.parent_span_id.is_none());
            assert!(!Hop::from_headers(&h, 0.0).ctx.sampled());
        }
        let mut id = [0u8; 16];
        id[8] = 0x40; // a quarter of the range
        assert!(ratio_samples(&id, 0.5));
        assert!(!ratio_samples(&id, 0.2));
    }
}
