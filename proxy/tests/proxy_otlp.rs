//! Spans over OTLP/HTTP (JSON): an app calls through an outbound and an
//! inbound proxy; both export one span per sampled request to a collector.
#![allow(clippy::unwrap_used)]

#[path = "support/net.rs"]
mod net;
#[path = "support/pki.rs"]
mod pki;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const APP_SPAN: &str = "00f067aa0ba902b7";
const UNSAMPLED_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

/// A collector that keeps every span POSTed to /v1/traces as JSON.
async fn collector() -> (SocketAddr, Arc<Mutex<Vec<Value>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let keep = spans.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let keep = keep.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let keep = keep.clone();
                        async move {
                            let ok = req.method() == "POST"
                                && req.uri().path() == "/v1/traces"
                                && req.headers()["content-type"] == "application/json";
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let v: Value = serde_json::from_slice(&body).unwrap();
                            for rs in v["resourceSpans"].as_array().unwrap() {
                                assert_eq!(
                                    rs["resource"]["attributes"][0]["value"]["stringValue"],
                                    "meshid-proxy"
                                );
                                for ss in rs["scopeSpans"].as_array().unwrap() {
                                    keep.lock()
                                        .unwrap()
                                        .extend(ss["spans"].as_array().unwrap().iter().cloned());
                                }
                            }
                            let mut r = http::Response::new(Full::new(Bytes::from_static(b"{}")));
                            if !ok {
                                *r.status_mut() = http::StatusCode::BAD_REQUEST;
                            }
                            Ok::<_, Infallible>(r)
                        }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, spans)
}

fn tracing_yaml(collector: SocketAddr) -> String {
    format!("tracing: {{ otlp_endpoint: \"http://{collector}\", batch_max: 64 }}\n")
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

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    let a = span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .unwrap_or_else(|| panic!("no attribute {key} in {span}"));
    &a["value"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_proxies_export_a_span_per_sampled_request() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/backend");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/frontend");
    let backend = net::http_backend().await;
    let (col, spans) = collector().await;
    let inbound = net::proxy(&net::inbound_yaml(
        &server,
        backend,
        "http",
        &tracing_yaml(col),
    ))
    .await;
    let outbound = net::proxy(
        &(net::outbound_yaml(
            &client,
            inbound.bound.inbound[0],
            "spiffe://example.org/backend",
            "http",
        ) + &tracing_yaml(col)),
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

    // Both proxies flush at least once a second.
    let mut got = Vec::new();
    for _ in 0..1000 {
        got = spans.lock().unwrap().clone();
        if got.iter().filter(|s| s["traceId"] == TRACE_ID).count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let ours: Vec<&Value> = got.iter().filter(|s| s["traceId"] == TRACE_ID).collect();
    assert_eq!(ours.len(), 2, "one span per proxy: {got:?}");
    let client_span = ours.iter().find(|s| s["kind"] == 3).unwrap();
    let server_span = ours.iter().find(|s| s["kind"] == 2).unwrap();

    // The outbound hop continues the app's span; the inbound hop continues it.
    assert_eq!(client_span["parentSpanId"], APP_SPAN);
    assert_eq!(server_span["parentSpanId"], client_span["spanId"]);
    assert_ne!(server_span["spanId"], client_span["spanId"]);
    assert_eq!(client_span["name"], "outbound POST");
    assert_eq!(server_span["name"], "inbound POST");
    for s in [client_span, server_span] {
        assert_eq!(s["spanId"].as_str().unwrap().len(), 16);
        assert_eq!(attr(s, "http.request.method")["stringValue"], "POST");
        assert_eq!(attr(s, "url.path")["stringValue"], "/orders/7");
        assert_eq!(attr(s, "http.response.status_code")["intValue"], "200");
        assert_eq!(attr(s, "meshid.decision")["stringValue"], "allow");
        assert_eq!(s["status"]["code"], 1);
        let start: u128 = s["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u128 = s["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(start > 1_600_000_000_000_000_000 && end >= start, "{s}");
    }
    assert_eq!(
        attr(server_span, "meshid.source_id")["stringValue"],
        "spiffe://example.org/frontend"
    );

    // Spans are queued in order, so the unsampled request's would have been
    // exported no later than the sampled one's.
    assert!(
        got.iter().all(|s| s["traceId"] != UNSAMPLED_TRACE_ID),
        "unsampled request exported: {got:?}"
    );
}

#[test]
fn https_endpoints_are_rejected_with_advice() {
    let yaml = r#"
identity:
  files: { cert: /c.pem, key: /k.pem, bundle: /b.pem }
inbound:
  - { listen: "127.0.0.1:0", forward_to: "127.0.0.1:8080" }
tracing: { otlp_endpoint: "https://collector:4318" }
"#;
    let err = meshid_proxy::ProxyConfig::from_yaml(yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("https") && err.contains("http://"), "{err}");
    let unknown = yaml.replace("otlp_endpoint", "endpoint");
    assert!(meshid_proxy::ProxyConfig::from_yaml(&unknown).is_err());
}
