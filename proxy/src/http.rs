//! HTTP/1.1 and HTTP/2 proxying (hyper 1).
//!
//! A request's path: server connection (auto-detects h1/h2) → [`forward`]:
//! authorize (inbound) → trace context → hop-by-hop cleanup → upstream
//! connection ([`pool`], same HTTP version as the request) → response →
//! access log + metrics.

pub mod forward;
pub mod headers;
pub mod pool;

pub use forward::{Forward, UpstreamVersion, serve_connection};

/// Response header that says why a request was denied.
pub const DENIED_HEADER: &str = "x-meshid-denied";
/// Response header of a 502 that names why the upstream failed
/// (`peer_id_mismatch`, `connect_failed`, a TLS handshake reason...).
pub const ERROR_HEADER: &str = "x-meshid-error";
