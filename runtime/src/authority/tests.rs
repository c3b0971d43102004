use bytes::BytesMut;
use loona_hpack::{Decoder, Encoder};
use proptest::prelude::*;

use super::frame::{FrameHeader, Kind};
use super::*;

const PCT_AUTHORITY: &[u8] = b"run%2Fmeshid%2Fagent.sock";

/// One frame: 9-byte header + payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn request_headers(authority: &[u8]) -> Vec<(&'static [u8], Vec<u8>)> {
    vec![
        (b":method", b"POST".to_vec()),
        (b":scheme", b"http".to_vec()),
        (b":path", b"/SpiffeWorkloadAPI/FetchX509SVID".to_vec()),
        (b":authority", authority.to_vec()),
        (b"content-type", b"application/grpc".to_vec()),
        (b"workload.spiffe.io", b"true".to_vec()),
    ]
}

fn encode(enc: &mut Encoder<'_>, headers: &[(&'static [u8], Vec<u8>)]) -> Vec<u8> {
    enc.encode(headers.iter().map(|(n, v)| (*n, v.as_slice())))
}

/// Splits `out` into frames.
fn frames(mut out: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut v = Vec::new();
    while !out.is_empty() {
        let h = FrameHeader::parse(out).unwrap();
        v.push((h, out[9..9 + h.len].to_vec()));
        out = &out[9 + h.len..];
    }
    v
}

/// What the server's HPACK decoder makes of the rewritten stream; its
/// dynamic table is 0 bytes, so any reference to it would fail.
fn server_view(out: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    assert_eq!(&out[..24], PREFACE);
    let mut dec = Decoder::new();
    dec.set_max_table_size(0);
    let mut blocks = Vec::new();
    let mut block = Vec::new();
    for (h, payload) in frames(&out[24..]) {
        match h.kind {
            Kind::Headers | Kind::Continuation => {
                assert!(h.len <= frame::MAX_FRAME_PAYLOAD);
                let start = if h.flags & 0x20 != 0 { 5 } else { 0 };
                assert_eq!(h.flags & 0x8, 0, "no padding is emitted");
                block.extend_from_slice(&payload[start..]);
                if h.flags & frame::END_HEADERS != 0 {
                    blocks.push(dec.decode(&block).unwrap());
                    block.clear();
                }
            }
            _ => {}
        }
    }
    blocks
}

fn value_of<'a>(headers: &'a [(Vec<u8>, Vec<u8>)], name: &[u8]) -> &'a [u8] {
    &headers.iter().find(|(n, _)| n == name).unwrap().1
}

fn rewrite_all(input: &[u8]) -> Result<(BytesMut, AuthorityRewriter), RewriteError> {
    let mut r = AuthorityRewriter::new();
    let mut out = BytesMut::new();
    r.feed(input, &mut out)?;
    Ok((out, r))
}

#[test]
fn percent_encoded_authority_becomes_localhost_and_the_rest_is_kept() {
    let mut enc = Encoder::new();
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    let block = encode(&mut enc, &request_headers(PCT_AUTHORITY));
    input.extend(frame(0x1, frame::END_HEADERS, 1, &block));
    input.extend(frame(0x0, frame::END_STREAM, 1, b"\0\0\0\0\0"));
    let (out, mut r) = rewrite_all(&input).unwrap();

    let blocks = server_view(&out);
    assert_eq!(blocks.len(), 1);
    assert_eq!(value_of(&blocks[0], b":authority"), b"localhost");
    assert_eq!(value_of(&blocks[0], b"workload.spiffe.io"), b"true");
    assert_eq!(
        value_of(&blocks[0], b":path"),
        b"/SpiffeWorkloadAPI/FetchX509SVID"
    );
    assert_eq!(r.rewritten(), 1);
    assert_eq!(
        r.drain_events().collect::<Vec<_>>(),
        vec![ClientEvent::Headers(1)]
    );
    // SETTINGS and DATA pass byte for byte.
    let f = frames(&out[24..]);
    assert_eq!(f[0].0.kind, Kind::Other(0x4));
    assert_eq!(f[2].1, b"\0\0\0\0\0");
    assert_eq!(f[2].0.flags, frame::END_STREAM);
}

#[test]
fn a_valid_authority_is_left_alone() {
    let mut enc = Encoder::new();
    let mut input = PREFACE.to_vec();
    let block = encode(&mut enc, &request_headers(b"localhost:8080"));
    input.extend(frame(
        0x1,
        frame::END_HEADERS | frame::END_STREAM,
        1,
        &block,
    ));
    let (out, r) = rewrite_all(&input).unwrap();
    let blocks = server_view(&out);
    assert_eq!(value_of(&blocks[0], b":authority"), b"localhost:8080");
    assert_eq!(r.rewritten(), 0);
    assert_eq!(frames(&out[24..])[0].0.flags & frame::END_STREAM, 1);
}

#[test]
fn the_clients_dynamic_table_is_followed_across_requests() {
    // The encoder indexes the first request's fields; the second request
    // refers to them by index only.
    let mut enc = Encoder::new();
    let mut input = PREFACE.to_vec();
    for stream in [1, 3, 5] {
        let block = encode(&mut enc, &request_headers(PCT_AUTHORITY));
        input.extend(frame(0x1, frame::END_HEADERS, stream, &block));
    }
    let (out, mut r) = rewrite_all(&input).unwrap();
    let blocks = server_view(&out);
    assert_eq!(blocks.len(), 3);
    assert!(blocks.iter().all(|b| b.len() == 6));
    assert!(
        blocks
            .iter()
            .all(|b| value_of(b, b":authority") == b"localhost")
    );
    assert_eq!(r.rewritten(), 3);
    assert_eq!(r.drain_events().count(), 3);
}

#[test]
fn padded_priority_headers_with_continuation_are_reassembled() {
    let mut enc = Encoder::new();
    let block = encode(&mut enc, &request_headers(PCT_AUTHORITY));
    let (a, b) = block.split_at(block.len() / 2);
    // Pad length 3, then exclusive dependency on stream 0 with weight 16.
    let mut payload = vec![3u8, 0x80, 0, 0, 0, 16];
    payload.extend(a);
    payload.extend([0, 0, 0]);
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x1, 0x8 | 0x20 | frame::END_STREAM, 7, &payload));
    input.extend(frame(0x9, frame::END_HEADERS, 7, b));
    let (out, _) = rewrite_all(&input).unwrap();
    let f = frames(&out[24..]);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].0.flags, 0x20 | frame::END_STREAM | frame::END_HEADERS);
    assert_eq!(&f[0].1[..5], &[0x80, 0, 0, 0, 16]);
    assert_eq!(value_of(&server_view(&out)[0], b":authority"), b"localhost");
}

#[test]
fn a_large_block_is_recut_into_continuation_frames() {
    let mut enc = Encoder::new();
    let mut headers = request_headers(PCT_AUTHORITY);
    headers.push((b"x-big", vec![b'a'; 40_000]));
    let block = encode(&mut enc, &headers);
    let mut input = PREFACE.to_vec();
    let (a, rest) = block.split_at(16_000);
    input.extend(frame(0x1, 0, 1, a));
    for (i, chunk) in rest.chunks(16_000).enumerate() {
        let last = (i + 1) * 16_000 >= rest.len();
        input.extend(frame(
            0x9,
            if last { frame::END_HEADERS } else { 0 },
            1,
            chunk,
        ));
    }
    let (out, _) = rewrite_all(&input).unwrap();
    let f = frames(&out[24..]);
    assert!(f.len() >= 3);
    assert_eq!(f[0].0.kind, Kind::Headers);
    assert!(f[1..].iter().all(|(h, _)| h.kind == Kind::Continuation));
    assert_eq!(value_of(&server_view(&out)[0], b"x-big").len(), 40_000);
}

#[test]
fn limits_and_malformed_streams_are_errors() {
    assert!(matches!(
        rewrite_all(b"GET / HTTP/1.1\r\n"),
        Err(RewriteError::Preface)
    ));
    // More than MAX_HEADER_BLOCK across CONTINUATIONs.
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x1, 0, 1, &[0x82; 16_000]));
    for _ in 0..4 {
        input.extend(frame(0x9, 0, 1, &[0x82; 16_000]));
    }
    assert!(matches!(
        rewrite_all(&input),
        Err(RewriteError::BlockTooLarge)
    ));
    // A header block interrupted by DATA.
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x1, 0, 1, &[0x82]));
    input.extend(frame(0x0, 0, 1, b"x"));
    assert!(matches!(
        rewrite_all(&input),
        Err(RewriteError::Malformed(_))
    ));
    // CONTINUATION on another stream.
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x1, 0, 1, &[0x82]));
    input.extend(frame(0x9, frame::END_HEADERS, 3, &[0x82]));
    assert!(matches!(
        rewrite_all(&input),
        Err(RewriteError::Malformed(_))
    ));
    // Padding longer than the payload.
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x1, 0x8 | frame::END_HEADERS, 1, &[9, 0x82]));
    assert!(matches!(
        rewrite_all(&input),
        Err(RewriteError::Malformed(_))
    ));
    // A dynamic-table reference that does not exist.
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x1, frame::END_HEADERS, 1, &[0xff, 0x10]));
    assert!(matches!(rewrite_all(&input), Err(RewriteError::Hpack(_))));
    // 1,000 references to one 4 KiB entry decode past MAX_HEADER_LIST.
    let mut block = vec![0x40, 0x01, b'x'];
    block.extend(loona_hpack::encoder::encode_integer(4000, 7));
    block.extend(std::iter::repeat_n(b'v', 4000));
    block.extend(std::iter::repeat_n(0xbe, 1000)); // index 62
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x1, frame::END_HEADERS, 1, &block));
    assert!(matches!(
        rewrite_all(&input),
        Err(RewriteError::ListTooLarge)
    ));
    // After an error, nothing more is accepted.
    let mut r = AuthorityRewriter::new();
    let mut out = BytesMut::new();
    assert!(r.feed(b"nope", &mut out).is_err());
    assert!(r.feed(PREFACE, &mut out).is_err());
}

#[test]
fn client_resets_are_reported() {
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x3, 0, 5, &[0, 0, 0, 8]));
    let (out, mut r) = rewrite_all(&input).unwrap();
    assert_eq!(&out[..], &input[..]);
    assert_eq!(
        r.drain_events().collect::<Vec<_>>(),
        vec![ClientEvent::Reset(5)]
    );
}

/// A valid client byte stream: settings, three requests (the first
/// with the percent-encoded authority), data, a ping.
fn valid_stream() -> Vec<u8> {
    let mut enc = Encoder::new();
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]));
    for (stream, auth) in [
        (1, PCT_AUTHORITY),
        (3, &b"localhost"[..]),
        (5, PCT_AUTHORITY),
    ] {
        let block = encode(&mut enc, &request_headers(auth));
        let (a, b) = block.split_at(block.len() / 3);
        input.extend(frame(0x1, 0, stream, a));
        input.extend(frame(0x9, frame::END_HEADERS, stream, b));
        input.extend(frame(0x0, frame::END_STREAM, stream, &[0; 40]));
    }
    input.extend(frame(0x6, 0, 0, &[1; 8]));
    input
}

proptest! {
    #[test]
    fn random_bytes_after_the_preface_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in proptest::collection::vec(0usize..4096, 0..16),
    ) {
        let mut input = PREFACE.to_vec();
        input.extend(body);
        let mut r = AuthorityRewriter::new();
        let mut out = BytesMut::new();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut last = 0;
        for c in cuts.into_iter().chain([input.len()]) {
            if r.feed(&input[last..c], &mut out).is_err() {
                break;
            }
            last = c;
            prop_assert!(out.len() <= input.len() * 40 + 24 * 1024);
        }
    }

    #[test]
    fn a_valid_stream_rewrites_the_same_however_it_is_split(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..32),
        truncate in any::<prop::sample::Index>(),
    ) {
        let input = valid_stream();
        let (whole, _) = rewrite_all(&input).unwrap();
        let mut r = AuthorityRewriter::new();
        let mut out = BytesMut::new();
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len())).collect();
        cuts.sort_unstable();
        let mut last = 0;
        for c in cuts.into_iter().chain([input.len()]) {
            r.feed(&input[last..c], &mut out).unwrap();
            last = c;
        }
        prop_assert_eq!(&out[..], &whole[..]);
        // A truncated stream yields a prefix of the full output.
        let cut = truncate.index(input.len());
        let (part, _) = rewrite_all(&input[..cut]).unwrap();
        prop_assert!(whole.starts_with(&part));
    }

    #[test]
    fn mutated_valid_streams_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut input = valid_stream();
        for (i, b) in flips {
            let at = 24 + i.index(input.len() - 24);
            input[at] = b;
        }
        let _ = rewrite_all(&input);
    }
}
