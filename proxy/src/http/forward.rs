//! Per-request handling: authorize, trace, rewrite, forward, log.

use super::DENIED_HEADER;
use super::connect::Upstream;
use crate::access_log::{self, Entry};
use crate::metrics::{Direction, INBOUND, RequestLabels, status_class};
use crate::policy::Request as AuthzRequest;
use crate::run::shared::{Shared, Verdict, rule_label};
use crate::trace::{Hop, PendingSpan, SpanKind, TraceContext};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::{Body, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use meshid_identity::SpiffeId;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};

/// The body of responses the proxy sends back.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

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
    client: Client<Upstream, Incoming>,
    shared: Arc<Shared>,
}

/// What is known about the client connection.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The verified SPIFFE ID, if any.
    pub id: Option<SpiffeId>,
    /// Label for logs and metrics.
    pub label: Arc<str>,
}

// === impl Forward ===

impl Forward {
    /// A forwarder to `upstream`. `pool: false` opens a connection per request.
    pub fn new(
        direction: Direction,
        destination: Arc<str>,
        port: u16,
        upstream: Upstream,
        pool: bool,
        shared: Arc<Shared>,
    ) -> Self {
        let mut b = Client::builder(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .set_host(false);
        if !pool {
            b.pool_max_idle_per_host(0);
        }
        Self {
            direction,
            destination,
            port,
            authorize: direction == INBOUND,
            client: b.build(upstream),
            shared,
        }
    }

    /// Handles one request; never fails (errors become 502/403 responses).
    pub async fn handle(
        &self,
        peer: &Peer,
        mut req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let start = Instant::now();
        let hop = Hop::from_headers(
            req.headers(),
            self.shared.spans.as_ref().map_or(1.0, |s| s.sample_ratio()),
        );
        let span = self.start_span(hop, &req);
        let mut verdict = Verdict::Allow;
        let mut rule = None;
        if self.authorize {
            let policy = self.shared.policy.load();
            let host = authority(&req);
            let mut areq = AuthzRequest::http(
                peer.id.as_ref(),
                self.port,
                req.method().as_str(),
                path(req.uri()),
            )
            .with_headers(req.headers());
            if let Some(h) = host.as_deref() {
                areq = areq.with_host(h);
            }
            let d = policy.evaluate(&areq);
            verdict = self.shared.verdict(&d);
            rule = rule_label(&d);
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
                self.finish(peer, &req, resp.status(), verdict, rule, None, 0, start);
                self.end_span(span, peer, resp.status(), verdict);
                return Ok(resp);
            }
        }
        hop.write(req.headers_mut());
        let trace = hop.ctx;
        let method_path = self
            .shared
            .access_log
            .enabled()
            .then(|| (req.method().clone(), req.uri().clone()));
        let bytes_in = req.body().size_hint().exact().unwrap_or(0);
        if let Err(status) = rewrite(&mut req) {
            let resp = simple(status);
            self.finish_parts(
                peer,
                method_path,
                resp.status(),
                verdict,
                rule,
                Some(trace),
                (bytes_in, 0),
                start,
            );
            self.end_span(span, peer, resp.status(), verdict);
            return Ok(resp);
        }
        let resp = match self.client.request(req).await {
            Ok(mut resp) => {
                strip_hop_by_hop(resp.headers_mut());
                resp.map(Either::Left)
            }
            Err(e) => {
                tracing::debug!(destination = %self.destination, "upstream request failed: {e}");
                simple(StatusCode::BAD_GATEWAY)
            }
        };
        let bytes_out = resp.body().size_hint().exact().unwrap_or(0);
        self.finish_parts(
            peer,
            method_path,
            resp.status(),
            verdict,
            rule,
            Some(trace),
            (bytes_in, bytes_out),
            start,
        );
        self.end_span(span, peer, resp.status(), verdict);
        Ok(resp)
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

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        peer: &Peer,
        req: &Request<Incoming>,
        status: StatusCode,
        verdict: Verdict,
        rule: Option<String>,
        trace: Option<TraceContext>,
        bytes_in: u64,
        start: Instant,
    ) {
        let mp = self
            .shared
            .access_log
            .enabled()
            .then(|| (req.method().clone(), req.uri().clone()));
        self.finish_parts(peer, mp, status, verdict, rule, trace, (bytes_in, 0), start);
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_parts(
        &self,
        peer: &Peer,
        method_path: Option<(http::Method, Uri)>,
        status: StatusCode,
        verdict: Verdict,
        rule: Option<String>,
        trace: Option<TraceContext>,
        (bytes_in, bytes_out): (u64, u64),
        start: Instant,
    ) {
        let elapsed = start.elapsed();
        let labels = RequestLabels {
            direction: self.direction,
            source: peer.label.clone(),
            destination: self.destination.clone(),
            decision: verdict.as_str(),
            status_class: status_class(status.as_u16()),
        };
        self.shared.metrics.request(&labels, elapsed);
        if verdict == Verdict::DenyAudit {
            tracing::info!(source = %peer.label, rule = ?rule, "audit: request would be denied");
        }
        if let Some((method, uri)) = method_path {
            self.shared.access_log.log(&Entry {
                time: access_log::timestamp(SystemTime::now()),
                direction: self.direction,
                protocol: "http",
                source: &peer.label,
                destination: &self.destination,
                method: Some(method.as_str()),
                path: Some(path(&uri)),
                status: Some(status.as_u16()),
                decision: verdict.as_str(),
                rule,
                bytes_in,
                bytes_out,
                duration_ms: access_log::millis(elapsed),
                trace_id: trace.map(|t| t.trace_id_hex()),
            });
        }
    }
}

/// Serves HTTP/1.1 and HTTP/2 on one accepted connection until it closes
/// or draining starts (then finishes in-flight requests gracefully).
pub async fn serve_connection<IO>(io: IO, peer: Peer, fwd: Arc<Forward>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let drain = fwd.shared.drain.clone();
    let _guard = drain.guard();
    let peer = Arc::new(peer);
    let svc = hyper::service::service_fn(move |req| {
        let fwd = fwd.clone();
        let peer = peer.clone();
        async move { fwd.handle(&peer, req).await }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("HTTP connection ended: {e}");
            }
            return;
        }
        () = drain.signaled() => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!("HTTP connection ended while draining: {e}");
    }
}

/// The request path (with query) or `/`.
fn path(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

/// The request's authority: URI authority (h2, absolute-form) or Host header.
fn authority<B>(req: &Request<B>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
}

/// Prepares the request for the upstream: absolute URI keeping the
/// original authority (the connector dials the fixed upstream anyway), a
/// Host header for HTTP/1.1, no hop-by-hop headers.
fn rewrite<B>(req: &mut Request<B>) -> Result<(), StatusCode> {
    let auth = authority(req).ok_or(StatusCode::BAD_REQUEST)?;
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let uri = Uri::builder()
        .scheme("http")
        .authority(auth.as_str())
        .path_and_query(pq)
        .build()
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    *req.uri_mut() = uri;
    if !req.headers().contains_key(header::HOST)
        && let Ok(v) = HeaderValue::from_str(&auth)
    {
        req.headers_mut().insert(header::HOST, v);
    }
    *req.version_mut() = Version::HTTP_11;
    strip_hop_by_hop(req.headers_mut());
    Ok(())
}

/// Removes connection-specific headers (RFC 9110 §7.6.1).
fn strip_hop_by_hop(h: &mut HeaderMap) {
    if let Some(conn) = h.get(header::CONNECTION).cloned()
        && let Ok(list) = conn.to_str()
    {
        for name in list.split(',') {
            let name = name.trim();
            if !name.eq_ignore_ascii_case("close")
                && !name.eq_ignore_ascii_case("keep-alive")
                && let Ok(n) = HeaderName::from_bytes(name.as_bytes())
            {
                h.remove(n);
            }
        }
    }
    for n in [
        header::CONNECTION,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        h.remove(n);
    }
    h.remove("keep-alive");
    h.remove("proxy-connection");
}

fn simple(status: StatusCode) -> Response<ProxyBody> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::new())));
    *r.status_mut() = status;
    r
}
