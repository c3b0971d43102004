//! W3C Trace Context (`traceparent`): continue an incoming trace with a new
//! span id for the proxy hop, or start a new trace when none (or a malformed
//! one) arrives.

use http::{HeaderMap, HeaderValue};

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";

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
        let mut trace_id: [u8; 16] = rand::random();
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        Self {
            trace_id,
            span_id: new_span_id(),
            flags: 0x01,
        }
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
        let ctx = headers
            .get(TRACEPARENT)
            .and_then(|v| Self::parse(v.as_bytes()))
            .map_or_else(Self::new_root, Self::child);
        if let Ok(v) = HeaderValue::from_bytes(&ctx.encode()) {
            headers.insert(TRACEPARENT, v);
        }
        ctx
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
        let mut out = [0u8; 32];
        write_hex(&self.trace_id, &mut out);
        out.iter().map(|&b| b as char).collect()
    }
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
}
