//! The ops HTTP endpoint: `/healthz`, `/readyz`, `/metrics`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cache::Snapshot;

/// Serves ops requests on `listener` until `shutdown` completes.
///
/// Ready means the agent has its identity and completed a first sync (a
/// snapshot with a trust domain was published).
pub async fn serve_ops(
    listener: TcpListener,
    registry: Arc<Registry>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "ops accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let registry = registry.clone();
        let snapshots = snapshots.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let resp = respond(&req, &registry, &snapshots);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = conn.serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!(error = %e, "ops connection ended");
            }
        });
    }
}

fn respond<B>(
    req: &Request<B>,
    registry: &Registry,
    snapshots: &watch::Receiver<Arc<Snapshot>>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            if snapshots.borrow().trust_domain.is_some() {
                text(StatusCode::OK, "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not synced with the CA yet\n".into(),
                )
            }
        }
        "/metrics" => {
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, registry) {
                Ok(()) => {
                    let mut r = text(StatusCode::OK, body);
                    if let Ok(v) = http::HeaderValue::from_str(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ) {
                        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
                    }
                    r
                }
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "encoding failed\n".into(),
                ),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "try /healthz, /readyz or /metrics\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}
