//! The HTTPS listener the API server calls: `POST /inject` with an
//! AdmissionReview. Bounded like every meshid listener: a TLS handshake and
//! a request head must arrive in time, a body is at most 4 MiB, open
//! connections are capped (one over the cap is closed at accept) and a
//! connection lives at most a few minutes (then closes after its request).

use super::config::InjectConfig;
use super::review::{self, Verdict};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rustls::ServerConfig;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Largest AdmissionReview accepted (the API server's own request limit is
/// 3 MiB of object).
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// The path the MutatingWebhookConfiguration names.
pub const PATH: &str = "/inject";

/// Bounds on what one client may cost the webhook.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// The TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// A request head must arrive within this.
    pub header_read_timeout: Duration,
    /// A request (body read and answer) must finish within this.
    pub request_timeout: Duration,
    /// After this a connection is closed once its current request is done.
    pub connection_lifetime: Duration,
    /// Open connections at most.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(300),
            max_connections: 256,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// What every request reads: the sidecar settings and the metrics.
#[derive(Debug)]
pub(crate) struct Handler {
    inject: InjectConfig,
    reviews: Family<ResultLabel, Counter>,
}

// === impl Handler ===

impl Handler {
    /// A handler whose metrics are registered in `registry`.
    pub(crate) fn new(inject: InjectConfig, registry: &mut Registry) -> Self {
        let reviews = Family::<ResultLabel, Counter>::default();
        registry.register(
            "meshid_webhook_reviews",
            "AdmissionReviews answered, by result (injected, skipped, denied, invalid)",
            reviews.clone(),
        );
        Self { inject, reviews }
    }

    fn count(&self, result: &'static str) {
        self.reviews.get_or_create(&ResultLabel { result }).inc();
    }

    async fn respond(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.uri().path() != PATH {
            return text(
                StatusCode::NOT_FOUND,
                format!("the webhook serves {PATH}\n"),
            );
        }
        if req.method() != Method::POST {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n".into());
        }
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the AdmissionReview as application/json\n".into(),
            );
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                self.count("invalid");
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("cannot read the body (at most {MAX_BODY} bytes): {e}\n"),
                );
            }
        };
        match review::answer(&body, &self.inject) {
            Ok(a) => {
                self.count(match a.verdict {
                    Verdict::Injected => "injected",
                    Verdict::Denied => "denied",
                    _ => "skipped",
                });
                let mut r = Response::new(Full::new(Bytes::from(a.body)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                r
            }
            Err(e) => {
                self.count("invalid");
                text(StatusCode::BAD_REQUEST, format!("{e}\n"))
            }
        }
    }
}

/// Serves `listener` until `shutdown`, then lets open connections finish
/// their request (at most `request_timeout`).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    handler: Arc<Handler>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let accept = meshid_runtime::accept::AcceptLimits {
        max_connections: limits.max_connections,
        drain_timeout: limits.request_timeout,
    };
    meshid_runtime::accept::serve(
        "webhook",
        listener,
        accept,
        shutdown,
        move |tcp, draining| {
            connection(
                tcp,
                acceptor.clone(),
                handler.clone(),
                limits.clone(),
                draining,
            )
        },
    )
    .await;
}

async fn connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    handler: Arc<Handler>,
    limits: Limits,
    draining: meshid_runtime::accept::Draining,
) {
    let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "webhook: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("webhook: TLS handshake timed out");
            return;
        }
    };
    let request_timeout = limits.request_timeout;
    let svc = hyper::service::service_fn(move |req| {
        let handler = handler.clone();
        async move {
            let answer = tokio::time::timeout(request_timeout, handler.respond(req)).await;
            Ok::<_, Infallible>(answer.unwrap_or_else(|_| {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "request timed out\n".into(),
                )
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(tls), svc);
    tokio::pin!(conn);
    let stopped = draining.started();
    let r = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped => { conn.as_mut().graceful_shutdown(); conn.as_mut().await }
        () = tokio::time::sleep(limits.connection_lifetime) => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(request_timeout, conn.as_mut()).await.unwrap_or(Ok(()))
        }
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "webhook: connection ended with an error");
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
