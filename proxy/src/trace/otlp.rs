//! OTLP/HTTP span export with the JSON encoding (no opentelemetry crates).
//!
//! The request path only calls [`SpanExporter::record`], which never
//! blocks: a span goes into a bounded queue or is dropped and counted. A
//! background task batches spans (up to `batch_max`, or whatever arrived
//! within [`FLUSH_EVERY`]) and POSTs them to `<endpoint>/v1/traces`.

use super::span::SpanRecord;
use crate::config::{ConfigError, TracingConfig};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A batch is sent at least this often while spans are waiting.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for the collector to answer one export request.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest interval between two export-failure warnings.
const WARN_EVERY: Duration = Duration::from_secs(30);
/// The queue holds this many batches before spans are dropped.
const QUEUE_BATCHES: usize = 4;

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
        let uri = cfg.traces_uri()?;
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
            uri,
            batch_max: cfg.batch_max,
            client: Client::builder(TokioExecutor::new()).build_http(),
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

/// The OTLP/JSON `ExportTraceServiceRequest` for `spans`.
pub fn export_request(spans: &[SpanRecord]) -> Value {
    json!({
        "resourceSpans": [{
            "resource": {
                "attributes": [
                    {"key": "service.name", "value": {"stringValue": "meshid-proxy"}},
                ],
            },
            "scopeSpans": [{
                "scope": {"name": "meshid-proxy"},
                "spans": spans.iter().map(SpanRecord::to_otlp_json).collect::<Vec<_>>(),
            }],
        }],
    })
}

struct ExportTask {
    uri: http::Uri,
    batch_max: usize,
    client: Client<HttpConnector, Full<Bytes>>,
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
        let result = self.send(batch).await;
        batch.clear();
        match result {
            Ok(()) => {
                self.counters.exported.inc_by(n);
            }
            Err(why) => {
                self.counters.dropped.inc_by(n);
                self.warn(n, &why);
            }
        }
    }

    async fn send(&self, batch: &[SpanRecord]) -> Result<(), String> {
        let body = serde_json::to_vec(&export_request(batch)).map_err(|e| e.to_string())?;
        let req = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(EXPORT_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| format!("no answer within {EXPORT_TIMEOUT:?}"))?
            .map_err(|e| format!("request failed: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("collector answered {}", resp.status()))
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
            endpoint = %self.uri,
            spans,
            suppressed_failures = self.suppressed,
            "OTLP span export failed: {why}; check that the collector is running"
        );
        self.last_warn = Some(now);
        self.suppressed = 0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::trace::{Hop, PendingSpan, SpanKind, TraceContext};
    use std::time::SystemTime;

    fn cfg(endpoint: &str) -> TracingConfig {
        TracingConfig {
            otlp_endpoint: endpoint.into(),
            sample_ratio: 1.0,
            batch_max: 1,
        }
    }

    #[tokio::test]
    async fn full_queue_drops_instead_of_blocking() {
        // Nothing listens on port 9 of the loopback in tests; failures are
        // counted as dropped too, so only count the queue bound here.
        let mut reg = Registry::default();
        let exp = SpanExporter::start(&cfg("http://127.0.0.1:9"), &mut reg).unwrap();
        let hop = Hop {
            ctx: TraceContext::new_root(),
            parent_span_id: None,
        };
        let uri: http::Uri = "/".parse().unwrap();
        let now = SystemTime::now();
        for _ in 0..100 {
            let s = PendingSpan::start(hop, SpanKind::Server, &http::Method::GET, &uri, now)
                .finish(200, "local".into(), "allow", now);
            exp.record(s);
        }
        // Capacity is batch_max * QUEUE_BATCHES = 4, and the task has not
        // run yet on this single-threaded runtime.
        assert_eq!(exp.counters.dropped.get(), 96);
    }

    #[test]
    fn export_request_wraps_spans_in_resource_and_scope() {
        let v = export_request(&[]);
        let rs = &v["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0]["value"]["stringValue"],
            "meshid-proxy"
        );
        assert_eq!(rs["scopeSpans"][0]["scope"]["name"], "meshid-proxy");
        assert!(rs["scopeSpans"][0]["spans"].as_array().unwrap().is_empty());
    }

    #[test]
    fn endpoint_validation() {
        let uri = |e: &str| cfg(e).traces_uri().map(|u| u.to_string());
        assert_eq!(
            uri("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            uri("http://collector:4318/otlp/").unwrap(),
            "http://collector:4318/otlp/v1/traces"
        );
        let https = uri("https://collector:4318").unwrap_err().to_string();
        assert!(https.contains("https"), "{https}");
        assert!(uri("collector:4318").is_err());
        assert!(uri("http://c:1/?q=1").is_err());
        let mut c = cfg("http://c:1");
        c.sample_ratio = 1.5;
        assert!(c.traces_uri().is_err());
        c.sample_ratio = f64::NAN;
        assert!(c.traces_uri().is_err());
        c.sample_ratio = 0.5;
        c.batch_max = 0;
        assert!(c.traces_uri().is_err());
    }
}
