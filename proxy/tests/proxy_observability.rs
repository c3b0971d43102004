//! Access log lines and the ops endpoint (/healthz, /readyz, /metrics).
#![allow(clippy::unwrap_used)]

#[path = "support/net.rs"]
mod net;
#[path = "support/pki.rs"]
mod pki;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_and_metrics_describe_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/backend");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/frontend");
    let backend = net::http_backend().await;
    let yaml = net::inbound_yaml(&server, backend, "http", "").replace("access_log: \"off\"", "")
        + &format!(
            "access_log: \"{}\"\nops_listen: \"127.0.0.1:0\"\n",
            log.display()
        );
    let inbound = net::proxy(&yaml).await;
    // One worker thread, so one upstream pool: reuse is exact to count.
    let outbound = net::proxy(&format!(
        "{}workers: 1\n",
        net::outbound_yaml(
            &client,
            inbound.bound.inbound[0],
            "spiffe://example.org/backend",
            "http",
        )
    ))
    .await;
    net::ready(&inbound).await;
    net::ready(&outbound).await;
    let ops = inbound.bound.ops.unwrap();
    assert_eq!(net::get_h1(ops, "GET", "/healthz").await.0, 200);
    assert_eq!(net::get_h1(ops, "GET", "/readyz").await.0, 200);

    // A request carrying a trace context: it reaches the app unchanged and
    // the access log shows its trace id.
    let tcp = tokio::net::TcpStream::connect(outbound.bound.outbound[0])
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("/traced?x=1")
        .header("host", "svc.test")
        .header("traceparent", TRACEPARENT)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, _) = net::split(send.send_request(req).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["x-seen-traceparent"], TRACEPARENT,
        "without span export the trace context passes both proxies untouched"
    );
    for i in 0..5 {
        assert_eq!(
            net::get_h1(outbound.bound.outbound[0], "GET", &format!("/more/{i}"))
                .await
                .0,
            200
        );
    }

    let line = meshid_tests::wait_for_line(&log, "/traced", net::WAIT).await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["direction"], "inbound");
    assert_eq!(v["protocol"], "http");
    assert_eq!(v["source"], "spiffe://example.org/frontend");
    assert_eq!(v["destination"], backend.to_string());
    assert_eq!(v["method"], "GET");
    assert_eq!(v["http_version"], "HTTP/1.1");
    assert_eq!(v["path"], "/traced?x=1");
    assert_eq!(v["status"], 200);
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(v["bytes_out"], "backend GET /traced".len());
    assert!(v["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(v["time"].as_str().unwrap().ends_with('Z'));

    // A client without a certificate is refused and counted.
    let addr = inbound.bound.inbound[0];
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sk", "--max-time", "5"])
            .arg(format!("https://{addr}/"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    let (status, _, text) = net::get_h1(ops, "GET", "/metrics").await;
    assert_eq!(status, 200);
    let src = "source=\"spiffe://example.org/frontend\"";
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("meshid_proxy_requests_total{")
                && l.contains(src)
                && l.contains("status_class=\"2xx\"")
        })
        .unwrap_or_else(|| panic!("no request counter in:\n{text}"));
    assert!(line.contains("decision=\"allow\""), "{line}");
    assert!(line.ends_with(" 6"), "six requests: {line}");
    let conns = text
        .lines()
        .find(|l| l.starts_with("meshid_proxy_connections_total{") && l.contains(src))
        .unwrap();
    assert!(
        conns.ends_with(" 1"),
        "the outbound pool reuses one upstream connection: {conns}"
    );
    assert!(
        text.lines().any(
            |l| l.starts_with("meshid_proxy_tls_handshake_errors_total{")
                && l.contains("reason=\"no_client_cert\"")
        ),
        "{text}"
    );
    assert!(text.contains("meshid_proxy_request_duration_seconds_bucket"));
    let expiry = text
        .lines()
        .find(|l| l.starts_with("meshid_proxy_cert_expiry_timestamp_seconds "))
        .unwrap();
    let secs: u64 = expiry.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs > 1_700_000_000, "{expiry}");
}
