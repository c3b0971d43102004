//! Spans over OTLP: an app calls through an outbound and an inbound proxy;
//! both export one span per sampled request to collector stubs that decode
//! the real protobuf (or OTLP JSON): gRPC `TraceService/Export` and HTTP
//! `/v1/traces`.
#![allow(clippy::unwrap_used)]

#[path = "support/net.rs"]
mod net;
#[path = "support/otlp_collector.rs"]
mod otlp_collector;
#[path = "support/pki.rs"]
mod pki;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use otlp_collector::{Received, Spans};
use std::net::SocketAddr;
use std::time::Duration;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const APP_SPAN: &str = "00f067aa0ba902b7";
const UNSAMPLED_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn tracing_yaml(protocol: &str, collector: SocketAddr, service: &str) -> String {
    format!(
        "tracing: {{ protocol: {protocol}, otlp_endpoint: \"http://{collector}\", \
         batch_max: 64, service_name: {service} }}\n"
    )
}

async fn get_traced(addr: SocketAddr, path: &str, traceparent: &str) -> u16 {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", "svc.test")
        .header("traceparent", traceparent)
        .body(Full::new(Bytes::new()))
        .unwrap();
    net::split(send.send_request(req).await.unwrap()).await.0
}

fn attr<'a>(r: &'a Received, key: &str) -> &'a Value {
    r.span
        .attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .unwrap_or_else(|| panic!("no attribute {key} in {:?}", r.span))
}

fn string(s: &str) -> Value {
    Value::StringValue(s.into())
}

/// Runs one unsampled and one sampled request through an outbound proxy
/// exporting with `out` and an inbound proxy exporting with `inb`
/// (`(protocol, collector)`); returns each proxy's span of the sampled trace.
async fn one_traced_call(
    out: (&str, SocketAddr, &Spans),
    inb: (&str, SocketAddr, &Spans),
) -> (Received, Received) {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/backend");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/frontend");
    let backend = net::http_backend().await;
    let inbound = net::proxy(&net::inbound_yaml(
        &server,
        backend,
        "http",
        &tracing_yaml(inb.0, inb.1, "backend"),
    ))
    .await;
    let outbound = net::proxy(
        &(net::outbound_yaml(
            &client,
            inbound.bound.inbound[0],
            "spiffe://example.org/backend",
            "http",
        ) + &tracing_yaml(out.0, out.1, "frontend")),
    )
    .await;
    net::ready(&inbound).await;
    net::ready(&outbound).await;
    let app = outbound.bound.outbound[0];

    // First a request the caller chose not to sample, then a sampled one.
    let unsampled = format!("00-{UNSAMPLED_TRACE_ID}-b7ad6b7169203331-00");
    assert_eq!(get_traced(app, "/quiet", &unsampled).await, 200);
    let sampled = format!("00-{TRACE_ID}-{APP_SPAN}-01");
    assert_eq!(get_traced(app, "/orders/7?secret=x", &sampled).await, 200);

    // Both proxies flush at least once a second. Each finds its own span
    // by kind (both may share one collector).
    let ours = |spans: &Spans, kind: SpanKind| {
        let got = spans.lock().unwrap().clone();
        // Spans are queued in order, so the unsampled request's would have
        // been exported no later than the sampled one's.
        assert!(
            got.iter()
                .all(|r| r.span.trace_id != unhex(UNSAMPLED_TRACE_ID)),
            "unsampled request exported: {got:?}"
        );
        got.into_iter()
            .find(|r| r.span.trace_id == unhex(TRACE_ID) && r.span.kind() == kind)
    };
    let wait = Duration::from_secs(10);
    let client_span = meshid_tests::eventually_async("the outbound span", wait, || async {
        ours(out.2, SpanKind::Client)
    })
    .await;
    let server_span = meshid_tests::eventually_async("the inbound span", wait, || async {
        ours(inb.2, SpanKind::Server)
    })
    .await;
    let count = |spans: &Spans| {
        let got = spans.lock().unwrap();
        got.iter()
            .filter(|r| r.span.trace_id == unhex(TRACE_ID))
            .count()
    };
    let total = if std::sync::Arc::ptr_eq(out.2, inb.2) {
        count(out.2)
    } else {
        count(out.2) + count(inb.2)
    };
    assert_eq!(total, 2, "one span per proxy");
    (client_span, server_span)
}

fn check(client: &Received, server: &Received) {
    let (c, s) = (&client.span, &server.span);
    assert_eq!(c.kind(), SpanKind::Client);
    assert_eq!(s.kind(), SpanKind::Server);
    assert_eq!(client.service_name, "frontend");
    assert_eq!(server.service_name, "backend");

    // The outbound hop continues the app's span; the inbound hop continues it.
    assert_eq!(c.parent_span_id, unhex(APP_SPAN));
    assert_eq!(s.parent_span_id, c.span_id);
    assert_ne!(s.span_id, c.span_id);
    assert_eq!(c.name, "outbound POST");
    assert_eq!(s.name, "inbound POST");
    for r in [client, server] {
        let sp = &r.span;
        assert_eq!(sp.span_id.len(), 8);
        assert_eq!(sp.flags, 0x301, "sampled, remote parent");
        assert_eq!(attr(r, "http.request.method"), &string("POST"));
        assert_eq!(attr(r, "url.path"), &string("/orders/7"));
        assert_eq!(attr(r, "http.response.status_code"), &Value::IntValue(200));
        assert_eq!(attr(r, "meshid.decision"), &string("allow"));
        assert_eq!(sp.status.as_ref().unwrap().code(), StatusCode::Ok);
        let (start, end) = (sp.start_time_unix_nano, sp.end_time_unix_nano);
        assert!(start > 1_600_000_000_000_000_000 && end >= start, "{sp:?}");
    }
    assert_eq!(
        attr(server, "meshid.source_id"),
        &string("spiffe://example.org/frontend")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_grpc_and_an_http_protobuf_collector() {
    let (grpc, grpc_spans) = otlp_collector::grpc().await;
    let (http, http_spans) = otlp_collector::http().await;
    let (client, server) = one_traced_call(
        ("grpc", grpc, &grpc_spans),
        ("http/protobuf", http, &http_spans),
    )
    .await;
    check(&client, &server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_http_json_collector() {
    let (http, spans) = otlp_collector::http().await;
    let (client, server) =
        one_traced_call(("http/json", http, &spans), ("http/json", http, &spans)).await;
    check(&client, &server);
}

/// A sampled server span of a fresh trace.
fn span() -> meshid_proxy::trace::SpanRecord {
    use meshid_proxy::trace::{Hop, PendingSpan, SpanKind as Kind, TraceContext};
    let hop = Hop {
        ctx: TraceContext::new_root(),
        parent_span_id: None,
    };
    let now = std::time::SystemTime::now();
    let uri: http::Uri = "/x".parse().unwrap();
    PendingSpan::start(hop, Kind::Server, &http::Method::GET, &uri, now).finish(
        200,
        "local".into(),
        "allow",
        now,
    )
}

/// An exporter to `collector` and its registry.
fn exporter(
    protocol: &str,
    collector: SocketAddr,
    batch_max: usize,
) -> (
    meshid_proxy::trace::SpanExporter,
    prometheus_client::registry::Registry,
) {
    let cfg = serde_yaml_ng::from_str(&format!(
        "{{ protocol: {protocol}, otlp_endpoint: \"http://{collector}\", \
         batch_max: {batch_max}, timeout: 200ms }}"
    ))
    .unwrap();
    let mut reg = prometheus_client::registry::Registry::default();
    let exp = meshid_proxy::trace::SpanExporter::start(&cfg, &mut reg).unwrap();
    (exp, reg)
}

/// `(exported, dropped)` as `/metrics` shows them.
fn counts(reg: &prometheus_client::registry::Registry) -> (u64, u64) {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, reg).unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    (
        value("meshid_proxy_otlp_spans_exported_total"),
        value("meshid_proxy_otlp_spans_dropped_total"),
    )
}

/// Waits (bounded) until the counters read `(exported, dropped)`.
async fn wait_for_counts(reg: &prometheus_client::registry::Registry, want: (u64, u64)) {
    let what = format!("(exported, dropped) to be {want:?}");
    meshid_tests::eventually_async(&what, Duration::from_secs(10), || async {
        (counts(reg) == want).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_spans_are_counted_as_dropped() {
    let (grpc, grpc_spans) = otlp_collector::grpc_refusing(1).await;
    let (http, http_spans) = otlp_collector::http_refusing(1).await;
    for (protocol, addr, received) in [
        ("grpc", grpc, grpc_spans),
        ("http/protobuf", http, http_spans),
    ] {
        let (exp, reg) = exporter(protocol, addr, 2);
        exp.record(span());
        exp.record(span());
        wait_for_counts(&reg, (1, 1)).await;
        assert_eq!(received.lock().unwrap().len(), 2, "{protocol}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_costs_spans_not_requests() {
    let silent = otlp_collector::silent().await;
    for protocol in ["grpc", "http/protobuf"] {
        let (exp, reg) = exporter(protocol, silent, 1);
        for _ in 0..3 {
            exp.record(span());
        }
        // record() returned at once for each span although the collector
        // hangs; every span ends up dropped (each batch by the 200 ms
        // timeout), none exported.
        wait_for_counts(&reg, (0, 3)).await;
    }
}

#[test]
fn endpoints_are_checked_at_load_with_advice() {
    let yaml = r#"
identity:
  files: { cert: /c.pem, key: /k.pem, bundle: /b.pem }
inbound:
  - { listen: "127.0.0.1:0", forward_to: "127.0.0.1:8080" }
tracing: { otlp_endpoint: "https://collector:4318" }
"#;
    let load = |y: &str| meshid_proxy::ProxyConfig::from_yaml(y).map_err(|e| e.to_string());
    let err = load(yaml).unwrap_err();
    assert!(err.contains("https") && err.contains("http://"), "{err}");
    assert!(load(&yaml.replace("otlp_endpoint", "endpoint")).is_err());
    let grpc_path = yaml.replace(
        "otlp_endpoint: \"https://collector:4318\"",
        "protocol: grpc, otlp_endpoint: \"http://collector:4317/otlp\"",
    );
    let err = load(&grpc_path).unwrap_err();
    assert!(err.contains("gRPC"), "{err}");
    let bad_protocol = yaml.replace(
        "otlp_endpoint: \"https://collector:4318\"",
        "protocol: thrift",
    );
    assert!(load(&bad_protocol).is_err());
    // The key of the OTLP/HTTP JSON exporter this replaced still loads.
    let old = yaml.replace("https://collector:4318", "http://127.0.0.1:4318");
    let cfg = load(&old).unwrap();
    assert_eq!(
        cfg.tracing.unwrap().protocol,
        meshid_proxy::config::OtlpProtocol::HttpProtobuf
    );
}
