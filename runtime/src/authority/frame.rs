//! HTTP/2 frame headers (RFC 9113 §4.1) and HEADERS payloads (§6.2).

use bytes::{BufMut, BytesMut};

use super::RewriteError;

/// Bytes in a frame header.
pub(crate) const HEADER_LEN: usize = 9;
/// Largest frame payload we emit: the minimum `SETTINGS_MAX_FRAME_SIZE`.
pub(crate) const MAX_FRAME_PAYLOAD: usize = 16_384;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// The frame types the rewriter and the stream tracker tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Data,
    Headers,
    RstStream,
    Continuation,
    Other(u8),
}

/// A parsed 9-byte frame header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameHeader {
    pub(crate) len: usize,
    pub(crate) kind: Kind,
    raw_kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream_id: u32,
}

// === impl FrameHeader ===

impl FrameHeader {
    /// Parses the header at the start of `buf`, if all 9 bytes are there.
    pub(crate) fn parse(buf: &[u8]) -> Option<Self> {
        let h: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let kind = match h[3] {
            0x0 => Kind::Data,
            0x1 => Kind::Headers,
            0x3 => Kind::RstStream,
            0x9 => Kind::Continuation,
            other => Kind::Other(other),
        };
        let stream_id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        Some(Self {
            len,
            kind,
            raw_kind: h[3],
            flags: h[4],
            stream_id,
        })
    }

    /// Writes this header back unchanged (the reserved bit cleared).
    pub(crate) fn write(&self, out: &mut BytesMut) {
        put_header(out, self.len, self.raw_kind, self.flags, self.stream_id);
    }
}

fn put_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream_id: u32) {
    // `len` never exceeds 24 bits: callers pass a received length or at
    // most MAX_FRAME_PAYLOAD.
    let len = u32::try_from(len).unwrap_or(u32::MAX).min(0x00ff_ffff);
    out.put_slice(&len.to_be_bytes()[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream_id & 0x7fff_ffff);
}

/// Splits a HEADERS payload into its priority fields (if flagged) and its
/// header block fragment, dropping padding.
pub(crate) fn headers_fragment(
    flags: u8,
    payload: &[u8],
) -> Result<(Option<[u8; 5]>, &[u8]), RewriteError> {
    let mut rest = payload;
    let mut pad = 0usize;
    if flags & PADDED != 0 {
        let (&len, tail) = rest.split_first().ok_or(RewriteError::Malformed(
            "PADDED HEADERS without a pad length",
        ))?;
        pad = usize::from(len);
        rest = tail;
    }
    let priority = if flags & PRIORITY != 0 {
        let fields: [u8; 5] =
            rest.get(..5)
                .and_then(|p| p.try_into().ok())
                .ok_or(RewriteError::Malformed(
                    "PRIORITY HEADERS shorter than 5 bytes",
                ))?;
        rest = &rest[5..];
        Some(fields)
    } else {
        None
    };
    let end = rest.len().checked_sub(pad).ok_or(RewriteError::Malformed(
        "HEADERS padding longer than its payload",
    ))?;
    Ok((priority, &rest[..end]))
}

/// Writes `block` as one HEADERS frame and as many CONTINUATION frames as
/// needed, none with a payload over [`MAX_FRAME_PAYLOAD`].
pub(crate) fn write_headers(
    out: &mut BytesMut,
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    block: &[u8],
) {
    let prio_len = priority.map_or(0, |p| p.len());
    let first_len = block.len().min(MAX_FRAME_PAYLOAD - prio_len);
    let (first, mut rest) = block.split_at(first_len);
    let mut flags = if end_stream { END_STREAM } else { 0 };
    if priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    put_header(out, prio_len + first.len(), 0x1, flags, stream_id);
    if let Some(p) = priority {
        out.put_slice(&p);
    }
    out.put_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME_PAYLOAD));
        let flags = if tail.is_empty() { END_HEADERS } else { 0 };
        put_header(out, chunk.len(), 0x9, flags, stream_id);
        out.put_slice(chunk);
        rest = tail;
    }
}
