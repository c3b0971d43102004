//! The HTTP ops endpoint: `/healthz` (process up), `/readyz` (store
//! answers) and `/metrics` (Prometheus text).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::CaMetrics;
use crate::store::Store;

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the ops endpoint reports on.
#[derive(Debug, Clone)]
pub struct OpsState {
    /// The CA's store.
    pub store: Arc<dyn Store>,
    /// The CA's metrics.
    pub metrics: CaMetrics,
}

/// Serves the ops endpoint on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, state: OpsState, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "ops endpoint accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .header_read_timeout(Duration::from_secs(5))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(tcp), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "ops connection ended with an error");
            }
        });
    }
}

async fn handle(
    state: OpsState,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".into(),
        ));
    }
    Ok(match req.uri().path() {
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => match tokio::time::timeout(READY_TIMEOUT, state.store.health()).await {
            Ok(Ok(())) => reply(StatusCode::OK, "text/plain", "ready\n".into()),
            Ok(Err(e)) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("store: {e}\n"),
            ),
            Err(_) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "store: no answer within 2s\n".into(),
            ),
        },
        "/metrics" => {
            if let Ok(n) = state.store.count_entries().await {
                state
                    .metrics
                    .entries
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            if let Ok(n) = state.store.count_agents().await {
                state
                    .metrics
                    .agents
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                state.metrics.encode(),
            )
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /healthz, /readyz or /metrics\n".into(),
        ),
    })
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}
