//! The forward stage: rewrite the request for the upstream connection and
//! send it on a pooled connection, in the HTTP version the listener calls
//! for; failures become 502s that say why.

use super::ProxyBody;
use super::headers::{prepare, strip_hop_by_hop};
use super::outcome::RequestOutcome;
use super::pool::{H1, Lease, Pool, UpstreamBody};
use crate::connect::{ConnectFailure, Upstream};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::{Body, Incoming};
use std::net::SocketAddr;
use std::sync::Arc;

/// Response header of a 502 that names why the upstream failed
/// (`peer_id_mismatch`, `connect_failed`, a TLS handshake reason...).
pub const ERROR_HEADER: &str = "x-meshid-error";

/// Which HTTP version requests are sent upstream with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamVersion {
    /// The version the request came with (sidecar to sidecar).
    Same,
    /// Always HTTP/1.1 (an HTTP/1.1 application).
    Http1,
    /// Always HTTP/2 (an h2c application, e.g. gRPC).
    Http2,
}

/// One listener's HTTP client to its upstream.
#[derive(Debug)]
pub struct Client {
    version: UpstreamVersion,
    /// The address dialed (for errors).
    addr: SocketAddr,
    /// The server identity (or address) expected there (for errors).
    expected: Arc<str>,
    pool: Arc<Pool>,
}

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
enum SendError {
    /// No upstream connection.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The upstream connection failed.
    #[error("upstream connection failed: {0}")]
    Http(hyper::Error),
}

// === impl Client ===

impl Client {
    /// A client of `upstream` where `expected` is who should answer.
    /// `reuse: false` opens a connection per request. Call from within the
    /// runtime that will use it.
    pub fn new(
        upstream: Upstream,
        version: UpstreamVersion,
        reuse: bool,
        expected: Arc<str>,
    ) -> Self {
        let addr = upstream.addr();
        let pool = Arc::new(Pool::new(upstream, reuse));
        pool.spawn_sweeper();
        Self {
            version,
            addr,
            expected,
            pool,
        }
    }

    /// Sends `req` upstream and returns the response for the client (a 400
    /// or 502 if it could not be forwarded); records the status, bytes and
    /// any error in `outcome`.
    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        outcome: &mut RequestOutcome,
    ) -> Response<ProxyBody> {
        outcome.bytes_in = req.body().size_hint().exact().unwrap_or(0);
        let h2 = match self.version {
            UpstreamVersion::Same => req.version() == Version::HTTP_2,
            UpstreamVersion::Http1 => false,
            UpstreamVersion::Http2 => true,
        };
        if let Err(status) = prepare(&mut req, h2) {
            return simple(status);
        }
        let resp = match self.send(req, h2).await {
            Ok(mut resp) => {
                strip_hop_by_hop(resp.headers_mut(), false);
                resp.map(Either::Left)
            }
            Err(SendError::Connect(e)) => {
                let f = ConnectFailure::new(&e, self.addr, &self.expected);
                outcome.error = Some(f.reason);
                bad_gateway(&f)
            }
            Err(e) => {
                tracing::debug!(destination = %self.expected, "upstream request failed: {e}");
                outcome.error = Some("upstream_failed");
                bad_gateway_plain()
            }
        };
        outcome.bytes_out = resp.body().size_hint().exact().unwrap_or(0);
        resp
    }

    /// Sends `req` upstream keeping its HTTP version (HTTP/2 falls back to
    /// HTTP/1.1 if the peer has no HTTP/2).
    async fn send(
        &self,
        mut req: Request<Incoming>,
        h2: bool,
    ) -> Result<Response<UpstreamBody>, SendError> {
        if !h2 {
            return self.send_h1(req, None).await;
        }
        match self.pool.h2().await.map_err(SendError::Connect)? {
            Lease::H2(mut tx) => {
                let resp = tx.send_request(req).await.map_err(SendError::Http)?;
                Ok(resp.map(|b| UpstreamBody::new(b, None)))
            }
            Lease::H1(tx) => {
                prepare(&mut req, false).map_err(|_| {
                    SendError::Connect(std::io::Error::other("request has no authority"))
                })?;
                self.send_h1(req, Some(tx)).await
            }
        }
    }

    /// Sends on `tx`, else an idle HTTP/1.1 connection, else a new one; the
    /// connection returns to the pool when the response body ends. A
    /// request the connection refused before writing it is retried once on
    /// a new one.
    async fn send_h1(
        &self,
        req: Request<Incoming>,
        tx: Option<H1>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let mut tx = match tx {
            Some(tx) => tx,
            None => self.pool.h1().await.map_err(SendError::Connect)?,
        };
        if tx.ready().await.is_err() {
            tx = self.pool.dial_h1().await.map_err(SendError::Connect)?;
        }
        let resp = match tx.try_send_request(req).await {
            Ok(resp) => resp,
            Err(mut e) => {
                let Some(req) = e.take_message() else {
                    return Err(SendError::Http(e.into_error()));
                };
                tx = self.pool.dial_h1().await.map_err(SendError::Connect)?;
                tx.send_request(req).await.map_err(SendError::Http)?
            }
        };
        let pool = self.pool.clone();
        Ok(resp.map(|b| UpstreamBody::new(b, Some((tx, pool)))))
    }
}

/// A 502 saying why the upstream connection failed (`x-meshid-error`
/// carries the reason label).
fn bad_gateway(f: &ConnectFailure) -> Response<ProxyBody> {
    let body = format!("meshid: {}\n", f.message);
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r.headers_mut().insert(
        HeaderName::from_static(ERROR_HEADER),
        HeaderValue::from_static(f.reason),
    );
    r
}

/// A 502 for an upstream connection that failed mid-request.
fn bad_gateway_plain() -> Response<ProxyBody> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from_static(
        b"meshid: the upstream connection failed\n",
    ))));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r.headers_mut().insert(
        HeaderName::from_static(ERROR_HEADER),
        HeaderValue::from_static("upstream_failed"),
    );
    r
}

fn simple(status: StatusCode) -> Response<ProxyBody> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::new())));
    *r.status_mut() = status;
    r
}
