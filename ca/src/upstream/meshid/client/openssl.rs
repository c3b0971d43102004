//! The downstream CA's TLS to its upstream on OpenSSL: identity's
//! [`PinnedHandshake`](meshid_identity::openssl::PinnedHandshake) (TLS 1.3,
//! ALPN h2, the agent SVID if given, pinned to the upstream's SPIFFE ID).

pub(super) use meshid_identity::openssl::PinnedHandshake as Handshake;
