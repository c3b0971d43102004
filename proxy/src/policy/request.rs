//! What the engine is asked about: one connection or one HTTP request.

use http::{HeaderMap, HeaderName};
use meshid_identity::SpiffeId;
use std::fmt;

/// The protocol the proxy saw on the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// An opaque TCP connection: only source and port are known.
    Tcp,
    /// An HTTP request: method, path, host and headers are known too.
    Http,
}

/// Read access to request headers without copying them.
pub trait HeaderSource {
    /// The first value of header `name`, if present and valid UTF-8.
    fn header(&self, name: &HeaderName) -> Option<&str>;
}

impl HeaderSource for HeaderMap {
    fn header(&self, name: &HeaderName) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Name-value pairs; names compare ignoring ASCII case.
impl HeaderSource for &[(&str, &str)] {
    fn header(&self, name: &HeaderName) -> Option<&str> {
        find_pair(self, name)
    }
}

/// Name-value pairs; names compare ignoring ASCII case.
impl<const N: usize> HeaderSource for [(&str, &str); N] {
    fn header(&self, name: &HeaderName) -> Option<&str> {
        find_pair(self, name)
    }
}

fn find_pair<'a>(pairs: &'a [(&str, &str)], name: &HeaderName) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_str()))
        .map(|(_, v)| *v)
}

/// No headers at all (TCP connections).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHeaders;

impl HeaderSource for NoHeaders {
    fn header(&self, _: &HeaderName) -> Option<&str> {
        None
    }
}

/// One authorization question. Borrowed, so building it does not allocate.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The verified peer SPIFFE ID; `None` for plaintext or unauthenticated peers.
    pub peer: Option<&'a SpiffeId>,
    /// The destination port the connection arrived on.
    pub port: u16,
    /// Whether HTTP attributes below are meaningful.
    pub protocol: Protocol,
    /// HTTP method, case-sensitive (`GET`).
    pub method: Option<&'a str>,
    /// HTTP path; a `?query` suffix is ignored when matching.
    pub path: Option<&'a str>,
    /// HTTP host (`:authority` or `Host`).
    pub host: Option<&'a str>,
    /// HTTP request headers.
    pub headers: &'a dyn HeaderSource,
}

// === impl Request ===

impl<'a> Request<'a> {
    /// A TCP connection from `peer` to `port`.
    pub fn tcp(peer: Option<&'a SpiffeId>, port: u16) -> Self {
        Self {
            peer,
            port,
            protocol: Protocol::Tcp,
            method: None,
            path: None,
            host: None,
            headers: &NoHeaders,
        }
    }

    /// An HTTP request from `peer` to `port`; add host and headers with the
    /// builder methods.
    pub fn http(peer: Option<&'a SpiffeId>, port: u16, method: &'a str, path: &'a str) -> Self {
        Self {
            protocol: Protocol::Http,
            method: Some(method),
            path: Some(path),
            ..Self::tcp(peer, port)
        }
    }

    /// Sets the HTTP host.
    pub fn with_host(mut self, host: &'a str) -> Self {
        self.host = Some(host);
        self
    }

    /// Sets the HTTP headers.
    pub fn with_headers(mut self, headers: &'a dyn HeaderSource) -> Self {
        self.headers = headers;
        self
    }

    /// The path without its query string.
    pub(crate) fn path_only(&self) -> Option<&'a str> {
        self.path.map(|p| p.split_once('?').map_or(p, |(p, _)| p))
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("peer", &self.peer.map(SpiffeId::as_str))
            .field("port", &self.port)
            .field("protocol", &self.protocol)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}
