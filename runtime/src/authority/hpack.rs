//! Decoding a client's header block and re-encoding it without indexing.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use loona_hpack::Decoder;
use loona_hpack::encoder::encode_integer_into;

use super::{MAX_HEADER_LIST, REPLACEMENT_AUTHORITY, RewriteError};

/// The dynamic table size a client may use: HTTP/2's default
/// `SETTINGS_HEADER_TABLE_SIZE`, which our servers do not change.
const MAX_TABLE_SIZE: usize = 4096;

/// Per-field overhead in the header list size (RFC 9113 §6.5.2).
const FIELD_OVERHEAD: usize = 32;

/// The connection's HPACK decoding context (it mirrors the client's
/// encoder, so one per connection, fed every block in order).
pub(crate) struct BlockRewriter {
    decoder: Decoder<'static>,
}

/// A re-encoded header block.
pub(crate) struct Rewritten {
    pub(crate) block: BytesMut,
    pub(crate) authority_replaced: bool,
}

// === impl BlockRewriter ===

impl BlockRewriter {
    pub(crate) fn new() -> Self {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(MAX_TABLE_SIZE);
        Self { decoder }
    }

    /// Decodes `block` and re-encodes every field as a literal without
    /// indexing, replacing an `:authority` that `http` cannot parse.
    pub(crate) fn rewrite(&mut self, block: &[u8]) -> Result<Rewritten, RewriteError> {
        let mut out = BytesMut::with_capacity(block.len() + 64);
        let mut list_size = 0usize;
        let mut too_large = false;
        let mut authority_replaced = false;
        self.decoder
            .decode_with_cb(block, |name: Cow<'_, [u8]>, value: Cow<'_, [u8]>| {
                list_size = list_size.saturating_add(name.len() + value.len() + FIELD_OVERHEAD);
                if too_large || list_size > MAX_HEADER_LIST {
                    too_large = true;
                    return;
                }
                let value: &[u8] = if &*name == b":authority" && !is_parsable_authority(&value) {
                    authority_replaced = true;
                    REPLACEMENT_AUTHORITY
                } else {
                    &value
                };
                put_literal(&mut out, &name, value);
            })
            .map_err(|e| RewriteError::Hpack(e.to_string()))?;
        if too_large {
            return Err(RewriteError::ListTooLarge);
        }
        Ok(Rewritten {
            block: out,
            authority_replaced,
        })
    }
}

/// Whether the HTTP/2 server would accept this `:authority`.
fn is_parsable_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// "Literal Header Field without Indexing — New Name" (RFC 7541 §6.2.2),
/// strings without Huffman coding.
fn put_literal(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_u8(0x00);
    for s in [name, value] {
        // Writing into memory cannot fail.
        let _ = encode_integer_into(s.len(), 7, 0x00, &mut (&mut *out).writer());
        out.put_slice(s);
    }
}
