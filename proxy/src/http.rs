//! HTTP/1.1 and HTTP/2 proxying (hyper 1).
//!
//! A request's path: [`serve`] (one downstream connection, h1/h2
//! auto-detected) → [`forward`], which runs the stages around one
//! [`outcome::RequestOutcome`]: [`authorize`] (inbound) → [`hop`] (trace
//! context) → [`send`] (hop-by-hop cleanup, upstream connection from
//! [`pool`] in the listener's HTTP version) → [`record`] (metrics, access
//! log).

mod authorize;
mod forward;
mod headers;
mod hop;
mod outcome;
mod pool;
mod record;
mod send;
mod serve;

use bytes::Bytes;
use http_body_util::{Either, Full};

pub use forward::Forward;
pub use send::UpstreamVersion;
pub use serve::serve_connection;

/// The body of responses the proxy sends back: the upstream's, or one the
/// proxy made (403, 400, 502).
pub type ProxyBody = Either<pool::UpstreamBody, Full<Bytes>>;
