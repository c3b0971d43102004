//! Accepting any `:authority` on Unix-socket gRPC servers.
//!
//! gRPC C-core (Python `grpcio`, pyspiffe, C++, Ruby), grpc-java and
//! grpc-swift dial `unix:/run/agent.sock` and send the socket path,
//! percent-encoded, as the HTTP/2 `:authority` (`run%2Fagent.sock`). The
//! `h2` crate under tonic turns `:authority` into an `http::uri::Authority`,
//! whose parser refuses `%` in a host, and answers the request with
//! `RST_STREAM(PROTOCOL_ERROR)`. The SPIFFE libraries of those languages
//! offer no way to set another authority, and on a Unix socket the
//! authority means nothing: our servers never look at it.
//!
//! [`AuthorityRewriter`] therefore sits on the client→server bytes of a
//! Unix-socket connection, before `h2` sees them:
//!
//! ```text
//!  client ──preface, frames──▶ AuthorityRewriter ──▶ h2 server
//!          HEADERS(+CONTINUATION) → HPACK decode → `:authority` h2 would
//!          refuse becomes `localhost` → re-encode without indexing →
//!          HEADERS + CONTINUATION ≤ 16 KiB each
//!          every other frame: unchanged
//!  client ◀────────────── untouched ─────────────────── h2 server
//! ```
//!
//! Every header block is decoded and re-encoded, not only those carrying a
//! bad authority, because the client's HPACK encoder indexes headers into
//! its dynamic table: the rewriter keeps the decoder that mirrors that table
//! and re-encodes each field as a literal without indexing, so the server's
//! table stays empty and can never disagree with what it is sent. Frames
//! are re-cut at 16,384 bytes, the smallest `SETTINGS_MAX_FRAME_SIZE` a
//! peer may advertise, so the output is valid whatever the server set.
//!
//! Everything is bounded ([`MAX_HEADER_BLOCK`], [`MAX_HEADER_LIST`]);
//! anything the rewriter cannot make sense of is an error, and the
//! connection is closed. This replaces patching `h2` (its fix, h2 PR #487,
//! is unmerged): the shim is small, uses the maintained `loona-hpack`
//! decoder, and leaves the HTTP/2 server itself as published.

pub(crate) mod frame;
mod hpack;

use bytes::{Buf, BytesMut};

use frame::{FrameHeader, Kind};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Largest encoded header block (HEADERS plus CONTINUATIONs) accepted.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Largest decoded header list accepted, counted as RFC 9113 §6.5.2 does
/// (name + value + 32 bytes per field).
pub const MAX_HEADER_LIST: usize = 64 * 1024;

/// What replaces an `:authority` the HTTP/2 server would refuse.
pub const REPLACEMENT_AUTHORITY: &[u8] = b"localhost";

/// Why a connection's client bytes cannot be forwarded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RewriteError {
    /// The connection does not start with the HTTP/2 preface.
    #[error("not an HTTP/2 connection: the client preface is missing")]
    Preface,
    /// A header block exceeds [`MAX_HEADER_BLOCK`].
    #[error("HTTP/2 header block is larger than {MAX_HEADER_BLOCK} bytes")]
    BlockTooLarge,
    /// A decoded header list exceeds [`MAX_HEADER_LIST`].
    #[error("HTTP/2 header list is larger than {MAX_HEADER_LIST} bytes")]
    ListTooLarge,
    /// A HEADERS or CONTINUATION frame is malformed.
    #[error("malformed HTTP/2 frame: {0}")]
    Malformed(&'static str),
    /// The header block is not valid HPACK.
    #[error("HPACK decoding failed: {0}")]
    Hpack(String),
}

/// A client frame the connection guard wants to know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A complete header block (a request, or trailers) on this stream.
    Headers(u32),
    /// The client reset this stream.
    Reset(u32),
}

/// Rewrites the client→server bytes of one HTTP/2 connection; see the
/// [module docs](self). Feed it what was read, forward what it writes.
pub struct AuthorityRewriter {
    state: State,
    input: BytesMut,
    block: hpack::BlockRewriter,
    open_block: Option<OpenBlock>,
    events: Vec<ClientEvent>,
    rewritten: u64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Preface,
    Header,
    /// Forwarding this many more payload bytes unchanged.
    Pass(usize),
    /// Waiting for the whole payload of a HEADERS/CONTINUATION frame.
    Collect(FrameHeader),
    /// A previous error: everything further is refused.
    Failed,
}

/// A header block started by HEADERS and not yet ended by END_HEADERS.
#[derive(Debug)]
struct OpenBlock {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragments: Vec<u8>,
}

// === impl AuthorityRewriter ===

impl AuthorityRewriter {
    /// A rewriter for a connection that has sent nothing yet.
    pub fn new() -> Self {
        Self {
            state: State::Preface,
            input: BytesMut::new(),
            block: hpack::BlockRewriter::new(),
            open_block: None,
            events: Vec::new(),
            rewritten: 0,
        }
    }

    /// Takes `input` (bytes read from the client) and appends what the
    /// server should read to `out`. Incomplete frames are kept for the next
    /// call. After an error the connection must be closed.
    pub fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), RewriteError> {
        if matches!(self.state, State::Failed) {
            return Err(RewriteError::Malformed("connection already failed"));
        }
        self.input.extend_from_slice(input);
        self.process(out).inspect_err(|_| {
            self.state = State::Failed;
            self.input.clear();
        })
    }

    /// Client events seen since the last call, in order.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, ClientEvent> {
        self.events.drain(..)
    }

    /// How many `:authority` values were replaced so far.
    pub fn rewritten(&self) -> u64 {
        self.rewritten
    }

    /// Whether bytes of an incomplete frame are buffered.
    pub fn is_mid_frame(&self) -> bool {
        !self.input.is_empty() || self.open_block.is_some()
    }

    fn process(&mut self, out: &mut BytesMut) -> Result<(), RewriteError> {
        loop {
            match self.state {
                State::Failed => return Err(RewriteError::Malformed("connection already failed")),
                State::Preface => {
                    let n = self.input.len().min(PREFACE.len());
                    if self.input[..n] != PREFACE[..n] {
                        return Err(RewriteError::Preface);
                    }
                    if n < PREFACE.len() {
                        return Ok(());
                    }
                    out.extend_from_slice(PREFACE);
                    self.input.advance(PREFACE.len());
                    self.state = State::Header;
                }
                State::Header => {
                    let Some(header) = FrameHeader::parse(&self.input) else {
                        return Ok(());
                    };
                    self.on_header(header, out)?;
                }
                State::Pass(remaining) => {
                    if self.input.is_empty() {
                        return Ok(());
                    }
                    let n = remaining.min(self.input.len());
                    out.extend_from_slice(&self.input.split_to(n));
                    self.state = if n == remaining {
                        State::Header
                    } else {
                        State::Pass(remaining - n)
                    };
                }
                State::Collect(header) => {
                    if self.input.len() < header.len {
                        return Ok(());
                    }
                    let payload = self.input.split_to(header.len);
                    self.state = State::Header;
                    self.on_block_frame(header, &payload, out)?;
                }
            }
        }
    }

    fn on_header(&mut self, header: FrameHeader, out: &mut BytesMut) -> Result<(), RewriteError> {
        self.input.advance(frame::HEADER_LEN);
        let in_block = self.open_block.is_some();
        match header.kind {
            Kind::Headers | Kind::Continuation if header.len > MAX_HEADER_BLOCK + 256 => {
                return Err(RewriteError::BlockTooLarge);
            }
            Kind::Headers if !in_block => {
                self.state = State::Collect(header);
                return Ok(());
            }
            Kind::Continuation if in_block => {
                self.state = State::Collect(header);
                return Ok(());
            }
            _ if in_block => {
                return Err(RewriteError::Malformed(
                    "a header block was interrupted by another frame",
                ));
            }
            Kind::RstStream => self.events.push(ClientEvent::Reset(header.stream_id)),
            _ => {}
        }
        header.write(out);
        self.state = if header.len == 0 {
            State::Header
        } else {
            State::Pass(header.len)
        };
        Ok(())
    }

    fn on_block_frame(
        &mut self,
        header: FrameHeader,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), RewriteError> {
        let mut block = match self.open_block.take() {
            Some(block) => {
                if header.stream_id != block.stream_id {
                    return Err(RewriteError::Malformed(
                        "CONTINUATION on another stream than its HEADERS",
                    ));
                }
                block
            }
            None => {
                let (priority, fragment) = frame::headers_fragment(header.flags, payload)?;
                OpenBlock {
                    stream_id: header.stream_id,
                    end_stream: header.flags & frame::END_STREAM != 0,
                    priority,
                    fragments: fragment.to_vec(),
                }
            }
        };
        if header.kind == Kind::Continuation {
            block.fragments.extend_from_slice(payload);
        }
        if block.fragments.len() > MAX_HEADER_BLOCK {
            return Err(RewriteError::BlockTooLarge);
        }
        if header.flags & frame::END_HEADERS == 0 {
            self.open_block = Some(block);
            return Ok(());
        }
        let rewritten = self.block.rewrite(&block.fragments)?;
        if rewritten.authority_replaced {
            self.rewritten += 1;
        }
        frame::write_headers(
            out,
            block.stream_id,
            block.end_stream,
            block.priority,
            &rewritten.block,
        );
        self.events.push(ClientEvent::Headers(block.stream_id));
        Ok(())
    }
}

impl Default for AuthorityRewriter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for AuthorityRewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityRewriter")
            .field("state", &self.state)
            .field("buffered", &self.input.len())
            .field("rewritten", &self.rewritten)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
