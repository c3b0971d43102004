//! OTLP collector stubs for the trace tests: a tonic `TraceService` server
//! and an OTLP/HTTP server. Both decode what the proxy really sends (the
//! protobuf, or the OTLP JSON) and keep every span with its resource's
//! `service.name`.
#![allow(clippy::unwrap_used, dead_code)]

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// The gRPC method the proxy must call.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A span as the collector received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The `service.name` of the span's resource.
    pub service_name: String,
    /// The decoded span.
    pub span: Span,
}

/// What a collector has received so far.
pub type Spans = Arc<Mutex<Vec<Received>>>;

fn keep(spans: &Spans, req: ExportTraceServiceRequest) {
    let mut spans = spans.lock().unwrap();
    for rs in req.resource_spans {
        let service_name = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for ss in rs.scope_spans {
            assert_eq!(ss.scope.unwrap().name, "meshid-proxy");
            spans.extend(ss.spans.into_iter().map(|span| Received {
                service_name: service_name.clone(),
                span,
            }));
        }
    }
}

/// The answer to an export: a partial success refusing `rejected` spans,
/// or plain success when 0.
fn response(rejected: i64) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected,
            error_message: "span limit".into(),
        }),
    }
}

/// A tonic server with only `TraceService/Export`, refusing `.1` spans of
/// each batch.
#[derive(Clone)]
struct TraceService(Spans, i64);

impl tonic::server::UnaryService<ExportTraceServiceRequest> for TraceService {
    type Response = ExportTraceServiceResponse;
    type Future = std::future::Ready<Result<tonic::Response<Self::Response>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<ExportTraceServiceRequest>) -> Self::Future {
        keep(&self.0, req.into_inner());
        std::future::ready(Ok(tonic::Response::new(response(self.1))))
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for TraceService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let svc = self.clone();
        Box::pin(async move {
            if req.uri().path() != EXPORT_PATH {
                return Ok(tonic::Status::unimplemented(req.uri().path().to_owned()).into_http());
            }
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(svc, req).await)
        })
    }
}

impl tonic::server::NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

/// A loopback listener, its address and an empty span list.
async fn listen() -> (tokio::net::TcpListener, SocketAddr, Spans) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr, Spans::default())
}

/// An OTLP/gRPC collector on a loopback port.
pub async fn grpc() -> (SocketAddr, Spans) {
    grpc_refusing(0).await
}

/// An OTLP/gRPC collector that refuses `rejected` spans of every batch.
pub async fn grpc_refusing(rejected: i64) -> (SocketAddr, Spans) {
    let (l, addr, spans) = listen().await;
    let svc = TraceService(spans.clone(), rejected);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
    );
    (addr, spans)
}

/// An OTLP/HTTP collector on a loopback port: POST /v1/traces with
/// `application/x-protobuf` or `application/json`, answered in kind; any
/// other request gets a 400 and is not kept.
pub async fn http() -> (SocketAddr, Spans) {
    http_refusing(0).await
}

/// An OTLP/HTTP collector that refuses `rejected` spans of every batch.
pub async fn http_refusing(rejected: i64) -> (SocketAddr, Spans) {
    let (l, addr, spans) = listen().await;
    let keep_in = spans.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let spans = keep_in.clone();
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let spans = spans.clone();
                    async move { Ok::<_, Infallible>(answer(&spans, rejected, req).await) }
                });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, spans)
}

async fn answer(
    spans: &Spans,
    rejected: i64,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let content_type = req
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let ok = req.method() == "POST" && req.uri().path() == "/v1/traces";
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let (decoded, reply) = match content_type.as_str() {
        "application/x-protobuf" => (
            ExportTraceServiceRequest::decode(body).ok(),
            response(rejected).encode_to_vec(),
        ),
        "application/json" => (
            serde_json::from_slice(&body).ok(),
            serde_json::to_vec(&response(rejected)).unwrap(),
        ),
        _ => (None, Vec::new()),
    };
    let mut resp = http::Response::new(Full::new(Bytes::from(reply)));
    match decoded {
        Some(req) if ok => {
            keep(spans, req);
            resp.headers_mut()
                .insert("content-type", content_type.parse().unwrap());
        }
        _ => *resp.status_mut() = http::StatusCode::BAD_REQUEST,
    }
    resp
}

/// A "collector" that accepts connections and never answers: every export
/// to it must end by the exporter's timeout.
pub async fn silent() -> SocketAddr {
    let (l, addr, _) = listen().await;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = l.accept().await {
            held.push(tcp);
        }
    });
    addr
}
