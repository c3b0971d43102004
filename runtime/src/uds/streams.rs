//! Which HTTP/2 streams of a connection are open, from the frames seen in
//! both directions (no HPACK needed: only frame headers are read).

use std::collections::HashSet;

use crate::authority::ClientEvent;
use crate::authority::frame::{END_STREAM, FrameHeader, HEADER_LEN, Kind};

/// More streams open at once than any legitimate client holds (servers
/// allow far fewer concurrent streams and refuse the rest).
pub(crate) const MAX_TRACKED_STREAMS: usize = 4096;

/// Streams the client opened that the server has not yet ended or reset.
#[derive(Debug, Default)]
pub(crate) struct StreamTracker {
    open: HashSet<u32>,
    highest_client_stream: u32,
}

/// Too many streams are open on one connection.
#[derive(Debug)]
pub(crate) struct TooManyStreams;

// === impl StreamTracker ===

impl StreamTracker {
    pub(crate) fn on_client(&mut self, event: ClientEvent) -> Result<(), TooManyStreams> {
        match event {
            // Only a higher id opens a stream (RFC 9113 §5.1.1); a lower one
            // carries trailers of a stream already counted.
            ClientEvent::Headers(id) if id > self.highest_client_stream => {
                self.highest_client_stream = id;
                self.open.insert(id);
                if self.open.len() > MAX_TRACKED_STREAMS {
                    return Err(TooManyStreams);
                }
            }
            ClientEvent::Reset(id) => {
                self.open.remove(&id);
            }
            _ => {}
        }
        Ok(())
    }

    fn on_server(&mut self, header: &FrameHeader) {
        let ends = match header.kind {
            Kind::Data | Kind::Headers => header.flags & END_STREAM != 0,
            Kind::RstStream => true,
            _ => false,
        };
        if ends {
            self.open.remove(&header.stream_id);
        }
    }

    /// Streams open now.
    pub(crate) fn active(&self) -> usize {
        self.open.len()
    }
}

/// Finds frame headers in the server's output, however it is split.
#[derive(Debug, Default)]
pub(crate) struct ServerFrames {
    header: [u8; HEADER_LEN],
    have: usize,
    skip: usize,
}

// === impl ServerFrames ===

impl ServerFrames {
    /// Scans bytes the server wrote, updating `streams`.
    pub(crate) fn scan(&mut self, mut bytes: &[u8], streams: &mut StreamTracker) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (HEADER_LEN - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == HEADER_LEN {
                self.have = 0;
                if let Some(h) = FrameHeader::parse(&self.header) {
                    streams.on_server(&h);
                    self.skip = h.len;
                }
            }
        }
    }
}
