//! HTTP versions through the proxies: HTTP/2 (h2c) to a gRPC-style app
//! with trailers, and HTTP/2 requests falling back to HTTP/1.1 towards a
//! peer without `h2`.
#![allow(clippy::unwrap_used)]

#[path = "support/net.rs"]
mod net;
#[path = "support/pki.rs"]
mod pki;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_inbound_port_speaks_h2c_to_the_app_with_trailers() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let backend = net::http_backend().await;
    let net::Pair {
        inbound,
        outbound,
        out,
    } = net::pair(
        dir.path(),
        &ca,
        ("spiffe://example.org/grpc", "spiffe://example.org/frontend"),
        backend,
        ("http2", "http"),
    )
    .await;

    // An HTTP/2 client (a gRPC stub) gets the app's trailer end to end.
    let tcp = tokio::net::TcpStream::connect(out).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method("POST")
        .uri("http://svc.test/pkg.Greeter/SayHello")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"\0\0\0\0\0",
        )))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-seen-version"], "HTTP/2.0");
    let collected = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    let trailers = collected.trailers().cloned().expect("trailers arrive");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(
        collected.to_bytes(),
        "backend POST /pkg.Greeter/SayHello".as_bytes()
    );

    // An HTTP/1.1 client reaches the same app over HTTP/2 too.
    let (status, headers, body) = net::get_h1(out, "GET", "/plain").await;
    assert_eq!((status, body.as_str()), (200, "backend GET /plain"));
    assert_eq!(headers["x-seen-version"], "HTTP/2.0");
    outbound.stop().await;
    inbound.stop().await;
}

/// A TLS peer that only speaks HTTP/1.1 (ALPN `http/1.1`), answering with
/// the version it got.
async fn http1_only_tls_peer(ca: &pki::Ca, id: &str) -> std::net::SocketAddr {
    use meshid_identity::crypto;
    let (cert, key) = ca.issue(id);
    let mut cfg = rustls::ServerConfig::builder_with_provider(crypto::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], crypto::private_key_der(&key))
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let v = format!("{:?}", req.version());
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(v)),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_fall_back_to_http1_when_the_peer_has_no_h2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/frontend");
    let peer = http1_only_tls_peer(&ca, "spiffe://example.org/legacy").await;
    let outbound = net::proxy(&net::outbound_yaml(
        &client,
        peer,
        "spiffe://example.org/legacy",
        "http",
    ))
    .await;
    net::ready(&outbound).await;
    let out = outbound.bound.outbound[0];
    for i in 0..3 {
        let (status, _, body) = net::get_h2(out, &format!("/h2/{i}")).await;
        assert_eq!((status, body.as_str()), (200, "HTTP/1.1"), "request {i}");
    }
    let (status, _, body) = net::get_h1(out, "GET", "/h1").await;
    assert_eq!((status, body.as_str()), (200, "HTTP/1.1"));
    outbound.stop().await;
}
