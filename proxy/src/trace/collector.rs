//! The OTLP collector as the exporter sees it: one [`Collector::export`]
//! per batch, as `TraceService/Export` over gRPC or as a POST to
//! `/v1/traces` with a protobuf or JSON body. Each call is bounded by the
//! configured timeout; nothing is retried (the exporter counts the spans
//! as dropped instead).

use crate::config::{ConfigError, OtlpProtocol, OtlpTarget};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Largest collector response body read (an `ExportTraceServiceResponse`
/// is a few bytes; a longer one is cut and not decoded).
const MAX_RESPONSE: usize = 64 * 1024;

/// Where batches go.
#[derive(Clone, Debug)]
pub(super) enum Collector {
    /// OTLP/gRPC.
    Grpc(TraceServiceClient<Channel>),
    /// OTLP/HTTP (boxed: its client is large, and there is one per proxy).
    Http(Box<HttpCollector>),
}

/// OTLP/HTTP: the client, the `/v1/traces` URL and the body encoding.
#[derive(Clone, Debug)]
pub(super) struct HttpCollector {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: http::Uri,
    json: bool,
}

/// Spans the collector took but refused (OTLP partial success).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Rejected {
    /// How many of the batch's spans were refused.
    pub spans: u64,
    /// The collector's explanation, possibly empty.
    pub message: String,
}

/// Why a batch did not reach the collector.
#[derive(Debug, thiserror::Error)]
pub(super) enum ExportError {
    /// The collector did not answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The gRPC call failed (connection refused, or the collector's status).
    #[error("gRPC export failed: {}: {}", .0.code(), .0.message())]
    Grpc(#[from] tonic::Status),
    /// The HTTP request could not be sent.
    #[error("HTTP export failed: {0}")]
    Http(#[from] hyper_util::client::legacy::Error),
    /// The collector answered with an error status.
    #[error("collector answered {0}")]
    Status(http::StatusCode),
    /// The batch could not be turned into an HTTP request.
    #[error("cannot build the export request: {0}")]
    Request(String),
}

// === impl Collector ===

impl Collector {
    /// A client for `target`. It connects on first use, so a collector
    /// that is down at start-up only costs spans, never the proxy.
    pub(super) fn new(target: &OtlpTarget, timeout: Duration) -> Result<Self, ConfigError> {
        Ok(match target.protocol {
            OtlpProtocol::Grpc => {
                let channel = Endpoint::from_shared(target.uri.to_string())
                    .map_err(|e| {
                        ConfigError::Invalid(format!("tracing.otlp_endpoint {}: {e}", target.uri))
                    })?
                    .connect_timeout(timeout)
                    .timeout(timeout)
                    .connect_lazy();
                Self::Grpc(TraceServiceClient::new(channel))
            }
            OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => {
                Self::Http(Box::new(HttpCollector {
                    client: Client::builder(TokioExecutor::new()).build_http(),
                    uri: target.uri.clone(),
                    json: target.protocol == OtlpProtocol::HttpJson,
                }))
            }
        })
    }

    /// Sends one batch and waits at most `timeout` for the answer.
    pub(super) async fn export(
        &mut self,
        req: ExportTraceServiceRequest,
        timeout: Duration,
    ) -> Result<Rejected, ExportError> {
        let call = async {
            let resp = match self {
                Self::Grpc(client) => client.export(req).await?.into_inner(),
                Self::Http(http) => http.export(&req).await?,
            };
            Ok(resp
                .partial_success
                .map_or_else(Rejected::default, |p| Rejected {
                    spans: u64::try_from(p.rejected_spans).unwrap_or(0),
                    message: p.error_message,
                }))
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| ExportError::Timeout(timeout))?
    }
}

// === impl HttpCollector ===

impl HttpCollector {
    async fn export(
        &self,
        req: &ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, ExportError> {
        let (content_type, body) = if self.json {
            let body = serde_json::to_vec(req).map_err(|e| ExportError::Request(e.to_string()))?;
            ("application/json", body)
        } else {
            ("application/x-protobuf", req.encode_to_vec())
        };
        let req = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ExportError::Request(e.to_string()))?;
        let resp = self.client.request(req).await?;
        if !resp.status().is_success() {
            return Err(ExportError::Status(resp.status()));
        }
        // A 2xx whose body is empty, too long or not an
        // ExportTraceServiceResponse still means the batch was taken.
        let Ok(body) = Limited::new(resp.into_body(), MAX_RESPONSE).collect().await else {
            return Ok(ExportTraceServiceResponse::default());
        };
        let body = body.to_bytes();
        Ok(if self.json {
            serde_json::from_slice(&body).unwrap_or_default()
        } else {
            ExportTraceServiceResponse::decode(body).unwrap_or_default()
        })
    }
}
