//! Sidecar to sidecar: app → outbound proxy → mTLS → inbound proxy → app,
//! for HTTP/1.1, HTTP/2 (prior knowledge) and opaque TCP.
#![allow(clippy::unwrap_used)]

#[path = "support/net.rs"]
mod net;
#[path = "support/pki.rs"]
mod pki;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_http2_cross_the_mtls_pair() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/backend");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/frontend");
    let backend = net::http_backend().await;
    let log = dir.path().join("inbound-access.log");
    let inbound = net::proxy(
        &net::inbound_yaml(&server, backend, "http", "")
            .replace("access_log: \"off\"", &format!("access_log: {:?}", log)),
    )
    .await;
    let outbound = net::proxy(&net::outbound_yaml(
        &client,
        inbound.bound.inbound[0],
        "spiffe://example.org/backend",
        "http",
    ))
    .await;
    net::ready(&inbound).await;
    net::ready(&outbound).await;
    let out = outbound.bound.outbound[0];

    let (status, headers, body) = net::get_h1(out, "GET", "/hello").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "backend GET /hello");
    assert_eq!(
        headers["x-seen-host"], "svc.test",
        "Host is preserved end to end"
    );
    assert!(
        !headers.contains_key("x-seen-traceparent"),
        "without span export the proxies invent no trace context"
    );

    let (status, headers, body) = net::get_h2(out, "/two").await;
    assert_eq!(status, 200);
    assert_eq!(body, "backend GET /two");
    assert_eq!(
        headers["x-seen-host"], "svc.test",
        "h2 :authority becomes Host"
    );

    // Between the sidecars each request keeps the version the app used
    // (the inbound access log records what reached it over mTLS).
    let line = meshid_tests::wait_for_line(&log, "\"/hello\"", net::WAIT).await;
    assert!(line.contains("\"http_version\":\"HTTP/1.1\""), "{line}");
    let line = meshid_tests::wait_for_line(&log, "\"/two\"", net::WAIT).await;
    assert!(line.contains("\"http_version\":\"HTTP/2\""), "{line}");

    // Many requests multiplex over the pooled upstream connection.
    for i in 0..20 {
        let (status, _, body) = net::get_h1(out, "GET", &format!("/n/{i}")).await;
        assert_eq!((status, body), (200, format!("backend GET /n/{i}")));
    }
    outbound.stop().await;
    inbound.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tcp_crosses_the_mtls_pair() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let echo = net::echo_backend().await;
    let pair = net::pair(
        dir.path(),
        &ca,
        ("spiffe://example.org/db", "spiffe://example.org/app"),
        echo,
        ("tcp", "tcp"),
    )
    .await;
    let msg = b"ping over opaque mTLS TCP";
    assert_eq!(net::tcp_roundtrip(pair.out, msg).await, msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_refuses_an_unexpected_server_id() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/impostor");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/app");
    let backend = net::http_backend().await;
    let echo = net::echo_backend().await;
    let http_in = net::proxy(&net::inbound_yaml(&server, backend, "http", "")).await;
    let tcp_in = net::proxy(&net::inbound_yaml(&server, echo, "tcp", "")).await;
    let (http_log, tcp_log) = (dir.path().join("http.log"), dir.path().join("tcp.log"));
    let with_log = |yaml: String, log: &std::path::Path| {
        yaml.replace(
            "access_log: \"off\"",
            &format!("access_log: {log:?}\nops_listen: \"127.0.0.1:0\""),
        )
    };
    let http_out = net::proxy(&with_log(
        net::outbound_yaml(
            &client,
            http_in.bound.inbound[0],
            "spiffe://example.org/backend",
            "http",
        ),
        &http_log,
    ))
    .await;
    let tcp_out = net::proxy(&with_log(
        net::outbound_yaml(
            &client,
            tcp_in.bound.inbound[0],
            "spiffe://example.org/backend",
            "tcp",
        ),
        &tcp_log,
    ))
    .await;
    for p in [&http_in, &tcp_in, &http_out, &tcp_out] {
        net::ready(p).await;
    }
    let (status, headers, body) = net::get_h1(http_out.bound.outbound[0], "GET", "/hello").await;
    assert_eq!(status, 502, "the impostor must not be reached: {body}");
    assert!(!body.contains("backend GET"));
    // The 502 says why, the access log does not call it allowed, and the
    // reason is counted.
    assert!(
        body.contains(
            "presented spiffe://example.org/impostor, expected spiffe://example.org/backend"
        ),
        "{body}"
    );
    assert_eq!(headers["x-meshid-error"], "peer_id_mismatch");
    let line = meshid_tests::wait_for_line(&http_log, "\"/hello\"", net::WAIT).await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (v["decision"].as_str(), v["error"].as_str()),
        (Some("error"), Some("peer_id_mismatch")),
        "{line}"
    );
    let metrics = net::get_h1(http_out.bound.ops.unwrap(), "GET", "/metrics")
        .await
        .2;
    assert!(
        metrics.contains("meshid_proxy_tls_handshake_errors_total{direction=\"outbound\",reason=\"peer_id_mismatch\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("decision=\"error\",mode=\"enforce\",status_class=\"5xx\"} 1"),
        "{metrics}"
    );

    assert!(
        net::tcp_roundtrip(tcp_out.bound.outbound[0], b"secret")
            .await
            .is_empty()
    );
    let line = meshid_tests::wait_for_line(&tcp_log, "\"tcp\"", net::WAIT).await;
    assert!(
        line.contains("\"decision\":\"error\",\"error\":\"peer_id_mismatch\""),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_lets_in_flight_requests_finish_then_closes_the_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let (backend, received) = net::http_backend_counting().await;
    let net::Pair {
        inbound,
        outbound,
        out,
    } = net::pair(
        dir.path(),
        &ca,
        (
            "spiffe://example.org/backend",
            "spiffe://example.org/frontend",
        ),
        backend,
        ("http", "http"),
    )
    .await;
    let inb = inbound.bound.inbound[0];

    // The backend holds /slow for 800 ms; stop the inbound proxy once the
    // request has reached it.
    let in_flight = tokio::spawn(async move { net::get_h1(out, "GET", "/slow/1").await });
    meshid_tests::eventually_async("the backend to receive /slow/1", net::WAIT, || async {
        (received.load(std::sync::atomic::Ordering::Acquire) == 1).then_some(())
    })
    .await;
    let stopping = tokio::spawn(inbound.stop());
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!((status, body.as_str()), (200, "backend GET /slow/1"));
    stopping.await.unwrap();

    // Drained: the inbound port no longer accepts, so the outbound answers 502.
    assert!(tokio::net::TcpStream::connect(inb).await.is_err());
    assert_eq!(net::get_h1(out, "GET", "/after").await.0, 502);
    outbound.stop().await;
}
