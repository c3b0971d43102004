//! The HTTP ops endpoint: `/healthz` (process up), `/readyz` (the store
//! answers and the CA can issue SVIDs agents verify; the body says why
//! not) and `/metrics` (Prometheus text).

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

use meshid_runtime::clock::SharedClock;

use crate::authority::Authority;
use crate::metrics::CaMetrics;
use crate::store::Store;

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the ops endpoint reports on.
#[derive(Clone)]
pub struct OpsState {
    /// The CA's store.
    pub store: Arc<dyn Store>,
    /// The CA's signing authority.
    pub authority: Arc<Authority>,
    /// The CA's metrics.
    pub metrics: CaMetrics,
    /// The time readiness is judged at.
    pub clock: SharedClock,
}

impl std::fmt::Debug for OpsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsState")
            .field("store", &self.store)
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
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
        "/readyz" => match not_ready(&state).await {
            None => reply(StatusCode::OK, "text/plain", "ready\n".into()),
            Some(why) => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", why),
        },
        "/metrics" => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.encode(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /healthz, /readyz or /metrics\n".into(),
        ),
    })
}

/// Every reason the CA is not ready, one line each; `None` when ready.
async fn not_ready(state: &OpsState) -> Option<String> {
    let mut why = String::new();
    match tokio::time::timeout(READY_TIMEOUT, state.store.health()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => why.push_str(&format!("store: {e}\n")),
        Err(_) => why.push_str("store: no answer within 2s\n"),
    }
    if let Err(e) = state.authority.check_issuance(state.clock.now()) {
        why.push_str(&format!("issuance: {e}\n"));
    }
    (!why.is_empty()).then_some(why)
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
