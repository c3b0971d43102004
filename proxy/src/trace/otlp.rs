//! OTLP span export, off the request path.
//!
//! The request path only calls [`SpanExporter::record`], which never
//! blocks: a span goes into a bounded queue (four batches long) or is
//! dropped and counted. A background task batches spans (up to
//! `batch_max`, or whatever arrived within [`FLUSH_EVERY`]) into one
//! `ExportTraceServiceRequest` and hands it to the collector (gRPC or HTTP,
//! see `tracing.protocol`). A batch the collector does not take in time, or
//! refuses, is counted as dropped and not retried.

use super::collector::{Collector, Rejected};
use super::span::{SpanRecord, attr};
use crate::config::{ConfigError, TracingConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A batch is sent at least this often while spans are waiting.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Shortest interval between two export-failure warnings.
const WARN_EVERY: Duration = Duration::from_secs(30);
/// The queue holds this many batches before spans are dropped.
const QUEUE_BATCHES: usize = 4;
/// The instrumentation scope of every span.
const SCOPE: &str = "meshid-proxy";

/// Hands finished spans to the background exporter.
#[derive(Clone, Debug)]
pub struct SpanExporter {
    tx: mpsc::Sender<SpanRecord>,
    sample_ratio: f64,
    counters: Counters,
}

#[derive(Clone, Debug, Default)]
struct Counters {
    exported: Counter,
    dropped: Counter,
}

// === impl SpanExporter ===

impl SpanExporter {
    /// Validates `cfg`, registers the span counters in `reg` and spawns the
    /// export task (needs a Tokio runtime). The task ends once every clone
    /// of the exporter is dropped, after sending what is queued.
    pub fn start(cfg: &TracingConfig, reg: &mut Registry) -> Result<Self, ConfigError> {
        let target = cfg.target()?;
        let collector = Collector::new(&target, cfg.timeout)?;
        let counters = Counters::default();
        let r = reg.sub_registry_with_prefix("meshid_proxy_otlp");
        r.register(
            "spans_exported",
            "Spans accepted by the OTLP collector",
            counters.exported.clone(),
        );
        r.register(
            "spans_dropped",
            "Spans lost: queue full, or the collector failed or refused them",
            counters.dropped.clone(),
        );
        let (tx, rx) = mpsc::channel(cfg.batch_max.saturating_mul(QUEUE_BATCHES));
        let task = ExportTask {
            endpoint: target.uri,
            collector,
            service_name: cfg.service_name.clone(),
            timeout: cfg.timeout,
            batch_max: cfg.batch_max,
            counters: counters.clone(),
            last_warn: None,
            suppressed: 0,
        };
        tokio::spawn(task.run(rx));
        Ok(Self {
            tx,
            sample_ratio: cfg.sample_ratio,
            counters,
        })
    }

    /// Share of new traces to sample.
    pub fn sample_ratio(&self) -> f64 {
        self.sample_ratio
    }

    /// Queues `span` for export; drops (and counts) it if the queue is full.
    pub fn record(&self, span: SpanRecord) {
        if self.tx.try_send(span).is_err() {
            self.counters.dropped.inc();
        }
    }
}

/// The OTLP `ExportTraceServiceRequest` for `spans`: one resource (with
/// `service.name`) and one instrumentation scope.
pub fn export_request(service_name: &str, spans: &[SpanRecord]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attr(
                    "service.name",
                    any_value::Value::StringValue(service_name.into()),
                )],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..InstrumentationScope::default()
                }),
                spans: spans.iter().map(SpanRecord::to_otlp).collect(),
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

struct ExportTask {
    endpoint: http::Uri,
    collector: Collector,
    service_name: String,
    timeout: Duration,
    batch_max: usize,
    counters: Counters,
    last_warn: Option<Instant>,
    suppressed: u64,
}

// === impl ExportTask ===

impl ExportTask {
    async fn run(mut self, mut rx: mpsc::Receiver<SpanRecord>) {
        let mut batch = Vec::with_capacity(self.batch_max);
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                span = rx.recv() => match span {
                    Some(span) => {
                        batch.push(span);
                        if batch.len() >= self.batch_max {
                            self.flush(&mut batch).await;
                        }
                    }
                    None => {
                        self.flush(&mut batch).await;
                        return;
                    }
                },
                _ = tick.tick() => self.flush(&mut batch).await,
            }
        }
    }

    async fn flush(&mut self, batch: &mut Vec<SpanRecord>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let req = export_request(&self.service_name, batch);
        batch.clear();
        match self.collector.export(req, self.timeout).await {
            Ok(Rejected { spans: 0, .. }) => {
                self.counters.exported.inc_by(n);
            }
            Ok(Rejected { spans, message }) => {
                let spans = spans.min(n);
                self.counters.exported.inc_by(n - spans);
                self.counters.dropped.inc_by(spans);
                self.warn(
                    spans,
                    &format!("the collector refused them ({message:?}); check its limits"),
                );
            }
            Err(why) => {
                self.counters.dropped.inc_by(n);
                self.warn(
                    n,
                    &format!("{why}; check that the collector is running and speaks this protocol"),
                );
            }
        }
    }

    /// Warns at most once per [`WARN_EVERY`], counting what was suppressed.
    fn warn(&mut self, spans: u64, why: &str) {
        let now = Instant::now();
        if self
            .last_warn
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            endpoint = %self.endpoint,
            spans,
            suppressed_failures = self.suppressed,
            "OTLP span export failed: {why}"
        );
        self.last_warn = Some(now);
        self.suppressed = 0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::OtlpProtocol;
    use crate::trace::{Hop, PendingSpan, SpanKind, TraceContext};
    use std::time::SystemTime;

    fn cfg(protocol: OtlpProtocol, endpoint: &str) -> TracingConfig {
        serde_yaml_ng::from_str(&format!(
            "{{ protocol: {protocol}, otlp_endpoint: \"{endpoint}\", batch_max: 1, timeout: 200ms }}",
            protocol = match protocol {
                OtlpProtocol::Grpc => "grpc",
                _ => "http/protobuf",
            }
        ))
        .unwrap()
    }

    fn span() -> SpanRecord {
        let hop = Hop {
            ctx: TraceContext::new_root(),
            parent_span_id: None,
        };
        let uri: http::Uri = "/".parse().unwrap();
        let now = SystemTime::now();
        PendingSpan::start(hop, SpanKind::Server, &http::Method::GET, &uri, now).finish(
            200,
            "local".into(),
            "allow",
            now,
        )
    }

    /// A loopback port with nothing listening on it.
    fn closed_port() -> std::net::SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    #[tokio::test]
    async fn full_queue_drops_instead_of_blocking() {
        let mut reg = Registry::default();
        let url = format!("http://{}", closed_port());
        let exp = SpanExporter::start(&cfg(OtlpProtocol::HttpProtobuf, &url), &mut reg).unwrap();
        for _ in 0..100 {
            exp.record(span());
        }
        // Capacity is batch_max * QUEUE_BATCHES = 4, and the task has not
        // run yet on this single-threaded runtime.
        assert_eq!(exp.counters.dropped.get(), 96);
    }

    #[tokio::test]
    async fn a_down_collector_costs_spans_not_requests() {
        for protocol in [OtlpProtocol::Grpc, OtlpProtocol::HttpProtobuf] {
            let mut reg = Registry::default();
            let url = format!("http://{}", closed_port());
            let exp = SpanExporter::start(&cfg(protocol, &url), &mut reg).unwrap();
            exp.record(span());
            let mut dropped = 0;
            for _ in 0..500 {
                dropped = exp.counters.dropped.get();
                if dropped == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(dropped, 1, "{protocol:?}");
            assert_eq!(exp.counters.exported.get(), 0);
        }
    }

    #[test]
    fn export_request_wraps_spans_in_resource_and_scope() {
        let req = export_request("api", &[span()]);
        let rs = &req.resource_spans[0];
        let resource = rs.resource.as_ref().unwrap();
        assert_eq!(resource.attributes[0].key, "service.name");
        assert_eq!(
            resource.attributes[0].value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("api".into()))
        );
        let scope = rs.scope_spans[0].scope.as_ref().unwrap();
        assert_eq!(scope.name, "meshid-proxy");
        assert_eq!(rs.scope_spans[0].spans.len(), 1);
    }

    #[test]
    fn json_encoding_follows_the_otlp_json_mapping() {
        let s = span();
        let v = serde_json::to_value(export_request("api", std::slice::from_ref(&s))).unwrap();
        let j = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(
            j["traceId"],
            crate::trace::hex(&s.trace_id),
            "hex, not base64"
        );
        assert_eq!(j["spanId"], crate::trace::hex(&s.span_id));
        assert_eq!(j["kind"], 2, "enums are integers");
        assert!(
            j["startTimeUnixNano"].is_string(),
            "64-bit integers are strings"
        );
        let status = j["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == "http.response.status_code")
            .unwrap();
        assert_eq!(status["value"]["intValue"], "200");
    }
}
