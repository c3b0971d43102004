//! What each ops path answers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use prometheus_client::registry::Registry;

use super::Readiness;

/// The content type of `/metrics` (prometheus-client writes OpenMetrics).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of every other answer.
const TEXT: &str = "text/plain; charset=utf-8";

/// Everything a request may read; shared by all connections.
pub(super) struct Routes {
    pub(super) registry: Arc<Registry>,
    pub(super) readiness: Arc<dyn Readiness>,
    pub(super) request_timeout: Duration,
}

// === impl Routes ===

impl Routes {
    /// The answer to `req`. Only the method and path are read.
    pub(super) async fn respond<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return r;
        }
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" => self.readyz().await,
            "/metrics" => self.metrics(),
            _ => text(
                StatusCode::NOT_FOUND,
                "try /healthz, /readyz or /metrics\n".into(),
            ),
        }
    }

    async fn readyz(&self) -> Response<Full<Bytes>> {
        match tokio::time::timeout(self.request_timeout, self.readiness.check()).await {
            Ok(Ok(())) => text(StatusCode::OK, "ready\n".into()),
            Ok(Err(why)) => text(StatusCode::SERVICE_UNAVAILABLE, why.body()),
            Err(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the readiness check did not finish within {:?}\n",
                    self.request_timeout
                ),
            ),
        }
    }

    fn metrics(&self) -> Response<Full<Bytes>> {
        let mut body = String::new();
        match prometheus_client::encoding::text::encode(&mut body, &self.registry) {
            Ok(()) => {
                let mut r = text(StatusCode::OK, body);
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(METRICS_CONTENT_TYPE),
                );
                r
            }
            Err(_) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding the metrics failed\n".into(),
            ),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT));
    r
}
