//! Per-request handling: authorize, trace, rewrite, forward, log.

use super::headers::{authority, path, prepare, strip_hop_by_hop, version_label};
use super::pool::{H1, Lease, Pool, UpstreamBody};
use super::{DENIED_HEADER, ERROR_HEADER};
use crate::access_log::{self, Entry};
use crate::authz::{Verdict, rule_label};
use crate::connect::{ConnectFailure, Upstream};
use crate::context::{Peer, Shared};
use crate::metrics::{Direction, ERROR_DECISION, INBOUND, RequestRecorder};
use crate::policy::Request as AuthzRequest;
use crate::trace::{Hop, PendingSpan, SpanKind, TRACEPARENT, TraceContext};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};

/// The body of responses the proxy sends back.
pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

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

/// Forwards requests of one listener to its upstream.
#[derive(Debug)]
pub struct Forward {
    direction: Direction,
    /// Destination label (address or expected server ID).
    destination: Arc<str>,
    /// Port given to the policy engine (the application's port).
    port: u16,
    /// Authorize requests (inbound) or not (outbound).
    authorize: bool,
    version: UpstreamVersion,
    /// The address dialed upstream (for errors).
    upstream: std::net::SocketAddr,
    pool: Arc<Pool>,
    shared: Arc<Shared>,
}

/// State of one downstream connection, shared by its requests.
#[derive(Debug)]
struct Downstream {
    peer: Peer,
    metrics: RequestRecorder,
    /// Requests being handled now (the idle timer runs while it is 0).
    active: tokio::sync::watch::Sender<usize>,
}

/// Counts one request as in flight while it lives.
struct Active<'a>(&'a tokio::sync::watch::Sender<usize>);

impl<'a> Active<'a> {
    fn new(tx: &'a tokio::sync::watch::Sender<usize>) -> Self {
        tx.send_modify(|n| *n += 1);
        Self(tx)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
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

// === impl Forward ===

impl Forward {
    /// A forwarder to `upstream`. `pool: false` opens a connection per
    /// request. Call from within the runtime that will serve it.
    pub fn new(
        direction: Direction,
        destination: Arc<str>,
        port: u16,
        upstream: (Upstream, UpstreamVersion),
        pool: bool,
        shared: Arc<Shared>,
    ) -> Self {
        let (upstream, version) = upstream;
        Self {
            direction,
            destination,
            port,
            authorize: direction == INBOUND,
            version,
            upstream: upstream.addr(),
            pool: {
                let p = Arc::new(Pool::new(upstream, pool));
                p.spawn_sweeper();
                p
            },
            shared,
        }
    }

    /// Handles one request; never fails (errors become 502/403 responses).
    async fn handle(
        &self,
        conn: &Downstream,
        mut req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let start = Instant::now();
        let _active = Active::new(&conn.active);
        let peer = &conn.peer;
        // Only a proxy that exports spans joins the trace (new span id, or
        // a new trace); otherwise `traceparent` passes through untouched, so
        // the application's spans never point at a parent nobody recorded.
        let hop = self
            .shared
            .spans
            .as_ref()
            .map(|s| Hop::from_headers(req.headers(), s.sample_ratio()));
        let span = hop.and_then(|hop| self.start_span(hop, &req));
        let mut verdict = Verdict::Allow;
        let mut rule = None;
        if self.authorize {
            let policy = self.shared.policy.load();
            let mut areq = AuthzRequest::http(
                peer.id.as_ref(),
                self.port,
                req.method().as_str(),
                path(req.uri()),
            )
            .with_headers(req.headers());
            if let Some(h) = authority(&req) {
                areq = areq.with_host(h);
            }
            let d = policy.evaluate(&areq);
            verdict = self.shared.verdict(&d);
            if verdict != Verdict::Allow || self.shared.access_log.enabled() {
                rule = rule_label(&d);
            }
            if verdict == Verdict::Deny {
                let reason = match &d.policy {
                    Some(p) => format!("{}: {p}", d.reason),
                    None => d.reason.to_string(),
                };
                let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(
                    b"RBAC: access denied\n",
                ))));
                *resp.status_mut() = StatusCode::FORBIDDEN;
                if let Ok(v) = HeaderValue::from_str(&reason) {
                    resp.headers_mut()
                        .insert(HeaderName::from_static(DENIED_HEADER), v);
                }
                let mp = self.method_path(&req);
                let outcome = (verdict, rule, None);
                self.finish(conn, mp, resp.status(), outcome, None, (0, 0), start);
                self.end_span(span, peer, resp.status(), verdict);
                return Ok(resp);
            }
        }
        let trace = match hop {
            Some(hop) => {
                hop.write(req.headers_mut());
                Some(hop.ctx)
            }
            None if self.shared.access_log.enabled() => req
                .headers()
                .get(TRACEPARENT)
                .and_then(|v| TraceContext::parse(v.as_bytes())),
            None => None,
        };
        let method_path = self.method_path(&req);
        let bytes_in = req.body().size_hint().exact().unwrap_or(0);
        let h2 = match self.version {
            UpstreamVersion::Same => req.version() == Version::HTTP_2,
            UpstreamVersion::Http1 => false,
            UpstreamVersion::Http2 => true,
        };
        if let Err(status) = prepare(&mut req, h2) {
            let resp = simple(status);
            self.finish(
                conn,
                method_path,
                resp.status(),
                (verdict, rule, None),
                trace,
                (bytes_in, 0),
                start,
            );
            self.end_span(span, peer, resp.status(), verdict);
            return Ok(resp);
        }
        let (resp, error) = match self.send(req, h2).await {
            Ok(mut resp) => {
                strip_hop_by_hop(resp.headers_mut(), false);
                (resp.map(Either::Left), None)
            }
            Err(SendError::Connect(e)) => {
                let f = ConnectFailure::new(&e, self.upstream, &self.destination);
                (bad_gateway(&f), Some(f.reason))
            }
            Err(e) => {
                tracing::debug!(destination = %self.destination, "upstream request failed: {e}");
                (bad_gateway_plain(), Some("upstream_failed"))
            }
        };
        let bytes_out = resp.body().size_hint().exact().unwrap_or(0);
        self.finish(
            conn,
            method_path,
            resp.status(),
            (verdict, rule, error),
            trace,
            (bytes_in, bytes_out),
            start,
        );
        self.end_span(span, peer, resp.status(), verdict);
        Ok(resp)
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

    /// What the access log needs from the request, if it is on.
    fn method_path<B>(&self, req: &Request<B>) -> Option<(http::Method, Uri, Version)> {
        self.shared
            .access_log
            .enabled()
            .then(|| (req.method().clone(), req.uri().clone(), req.version()))
    }

    /// A span for this request if spans are exported and the trace is sampled.
    fn start_span<B>(&self, hop: Hop, req: &Request<B>) -> Option<PendingSpan> {
        self.shared.spans.as_ref()?;
        if !hop.ctx.sampled() {
            return None;
        }
        let kind = if self.direction == INBOUND {
            SpanKind::Server
        } else {
            SpanKind::Client
        };
        Some(PendingSpan::start(
            hop,
            kind,
            req.method(),
            req.uri(),
            SystemTime::now(),
        ))
    }

    fn end_span(
        &self,
        span: Option<PendingSpan>,
        peer: &Peer,
        status: StatusCode,
        verdict: Verdict,
    ) {
        if let (Some(span), Some(exporter)) = (span, &self.shared.spans) {
            exporter.record(span.finish(
                status.as_u16(),
                peer.label.clone(),
                verdict.as_str(),
                SystemTime::now(),
            ));
        }
    }

    /// Records a finished request. `outcome` is the verdict, the deciding
    /// rule, and why the proxy could not forward it (then the decision is
    /// logged and counted as `error`, not as the verdict).
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        conn: &Downstream,
        method_path: Option<(http::Method, Uri, Version)>,
        status: StatusCode,
        (verdict, rule, error): (Verdict, Option<String>, Option<&'static str>),
        trace: Option<TraceContext>,
        (bytes_in, bytes_out): (u64, u64),
        start: Instant,
    ) {
        let elapsed = start.elapsed();
        let peer = &conn.peer;
        let decision = if error.is_some() {
            ERROR_DECISION
        } else {
            verdict.as_str()
        };
        conn.metrics.record(decision, status.as_u16(), elapsed);
        if verdict == Verdict::DenyAudit {
            tracing::info!(source = %peer.label, rule = ?rule, "audit: request would be denied");
        }
        if let Some((method, uri, version)) = method_path {
            self.shared.access_log.log(&Entry {
                time: access_log::timestamp(SystemTime::now()),
                direction: self.direction,
                protocol: "http",
                source: &peer.label,
                destination: &self.destination,
                http_version: Some(version_label(version)),
                method: Some(method.as_str()),
                path: Some(path(&uri)),
                status: Some(status.as_u16()),
                decision,
                error,
                rule,
                bytes_in,
                bytes_out,
                duration_ms: access_log::millis(elapsed),
                trace_id: trace.map(|t| t.trace_id_hex()),
            });
        }
    }
}

/// Serves HTTP/1.1 and HTTP/2 on one accepted connection until it closes,
/// draining starts, or it has had no request in flight for
/// `connections.idle_timeout_secs` (then it finishes in-flight responses
/// gracefully). HTTP/1.1 headers must arrive within
/// `connections.header_read_timeout_secs`.
pub async fn serve_connection<IO>(io: IO, peer: Peer, fwd: Arc<Forward>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let drain = fwd.shared.drain.clone();
    let _guard = drain.guard();
    let limits = fwd.shared.limits.clone();
    let (active, idle_rx) = tokio::sync::watch::channel(0usize);
    let conn = Arc::new(Downstream {
        active,
        metrics: fwd.shared.metrics.recorder(
            fwd.direction,
            peer.label.clone(),
            fwd.destination.clone(),
        ),
        peer,
    });
    let svc = hyper::service::service_fn(move |req| {
        let fwd = fwd.clone();
        let conn = conn.clone();
        async move { fwd.handle(&conn, req).await }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout());
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        biased;
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("HTTP connection ended: {e}");
            }
            return;
        }
        () = drain.signaled() => {}
        () = idle(idle_rx, limits.idle_timeout()) => {
            tracing::debug!("closing an idle HTTP connection");
        }
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!("HTTP connection ended while draining: {e}");
    }
}

/// Resolves once no request has been in flight for `timeout`.
async fn idle(mut active: tokio::sync::watch::Receiver<usize>, timeout: Duration) {
    loop {
        if active.wait_for(|n| *n == 0).await.is_err() {
            return std::future::pending().await;
        }
        active.mark_unchanged();
        tokio::select! {
            () = tokio::time::sleep(timeout) => return,
            r = active.changed() => if r.is_err() {
                return std::future::pending().await;
            },
        }
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
