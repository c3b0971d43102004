//! Test peers: an HTTP backend, a TCP echo server, proxies, clients.
#![allow(dead_code)]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use meshid_proxy::ProxyConfig;
use meshid_proxy::run::Running;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a proxy test waits for something that should happen at once
/// (a log line, a metric, a loaded identity): bounded, generous for CI.
pub const WAIT: Duration = Duration::from_secs(10);

/// An HTTP/1.1 + HTTP/2 backend answering `backend <METHOD> <path>` and
/// echoing what it saw in `x-seen-*` headers; paths under `/slow` answer
/// after 800 ms. It says which HTTP version it got (`x-seen-version`) and
/// ends HTTP/2 answers with a `grpc-status: 0` trailer.
pub async fn http_backend() -> SocketAddr {
    http_backend_counting().await.0
}

/// [`http_backend`] that also counts the requests it has received (counted
/// on arrival, before a `/slow` answer waits).
pub async fn http_backend_counting() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let count = count.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    count.fetch_add(1, Ordering::AcqRel);
                    async move {
                        let tp = req.headers().get("traceparent").cloned();
                        let host = req.headers().get("host").cloned();
                        if req.uri().path().starts_with("/slow") {
                            tokio::time::sleep(Duration::from_millis(800)).await;
                        }
                        let body = format!("backend {} {}", req.method(), req.uri().path());
                        // gRPC-style: HTTP/2 answers end with a `grpc-status` trailer.
                        let trailers = (req.version() == http::Version::HTTP_2).then(|| {
                            let mut t = http::HeaderMap::new();
                            t.insert("grpc-status", http::HeaderValue::from_static("0"));
                            t
                        });
                        let body = Full::new(Bytes::from(body))
                            .with_trailers(async move { trailers.map(Ok) });
                        let mut r = Response::new(body);
                        r.headers_mut().insert(
                            "x-seen-version",
                            http::HeaderValue::from_str(&format!("{:?}", req.version())).unwrap(),
                        );
                        if let Some(tp) = tp {
                            r.headers_mut().insert("x-seen-traceparent", tp);
                        }
                        if let Some(h) = host {
                            r.headers_mut().insert("x-seen-host", h);
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
    (addr, received)
}

/// A TCP echo server.
pub async fn echo_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Starts a proxy from YAML.
pub async fn proxy(yaml: &str) -> Running {
    let cfg = ProxyConfig::from_yaml(yaml).unwrap();
    meshid_proxy::start(cfg).await.unwrap()
}

/// Waits until the proxy has loaded its identity (bounded by [`WAIT`]).
pub async fn ready(p: &Running) {
    meshid_tests::eventually_async("the proxy to load its identity", WAIT, || async {
        p.shared.tls.is_ready().then_some(())
    })
    .await;
}

/// One HTTP/1.1 request on a fresh connection; returns (status, headers, body).
pub async fn get_h1(addr: SocketAddr, method: &str, path: &str) -> (u16, http::HeaderMap, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "svc.test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    split(resp).await
}

/// One HTTP/2 (prior knowledge) request on a fresh connection.
pub async fn get_h2(addr: SocketAddr, path: &str) -> (u16, http::HeaderMap, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .uri(format!("http://svc.test{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    split(resp).await
}

pub async fn split(resp: Response<hyper::body::Incoming>) -> (u16, http::HeaderMap, String) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// Sends `msg` over TCP and reads until EOF or `msg.len()` bytes.
pub async fn tcp_roundtrip(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(msg).await.unwrap();
    let mut out = vec![0u8; msg.len()];
    let mut got = 0;
    while got < msg.len() {
        match s.read(&mut out[got..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    out.truncate(got);
    out
}

/// YAML for an inbound proxy with file identity.
pub fn inbound_yaml(
    files: &super::pki::SvidFiles,
    forward_to: SocketAddr,
    protocol: &str,
    extra: &str,
) -> String {
    format!(
        r#"
identity:
  files: {{ cert: "{}", key: "{}", bundle: "{}", poll_ms: 50 }}
inbound:
  - {{ listen: "127.0.0.1:0", forward_to: "{forward_to}", protocol: {protocol} }}
access_log: "off"
{extra}
"#,
        files.cert.display(),
        files.key.display(),
        files.bundle.display()
    )
}

/// YAML for an outbound proxy to `upstream` expecting `server_id`.
pub fn outbound_yaml(
    files: &super::pki::SvidFiles,
    upstream: SocketAddr,
    server_id: &str,
    protocol: &str,
) -> String {
    format!(
        r#"
identity:
  files: {{ cert: "{}", key: "{}", bundle: "{}", poll_ms: 50 }}
outbound:
  - {{ listen: "127.0.0.1:0", upstream: "{upstream}", server_id: "{server_id}", protocol: {protocol} }}
access_log: "off"
"#,
        files.cert.display(),
        files.key.display(),
        files.bundle.display()
    )
}

/// A running sidecar pair: outbound → mTLS → inbound → app.
pub struct Pair {
    pub inbound: Running,
    pub outbound: Running,
    /// The outbound listener the local app talks to.
    pub out: SocketAddr,
}

/// Starts a pair and waits until both proxies have their identity. The
/// inbound presents `ids.0` and forwards to `app` as `protocols.0`; the
/// outbound presents `ids.1`, expects `ids.0` and carries `protocols.1`.
pub async fn pair(
    dir: &std::path::Path,
    ca: &super::pki::Ca,
    ids: (&str, &str),
    app: SocketAddr,
    protocols: (&str, &str),
) -> Pair {
    let server = ca.write_svid(dir, "server", ids.0);
    let client = ca.write_svid(dir, "client", ids.1);
    let inbound = proxy(&inbound_yaml(&server, app, protocols.0, "")).await;
    let outbound = proxy(&outbound_yaml(
        &client,
        inbound.bound.inbound[0],
        ids.0,
        protocols.1,
    ))
    .await;
    ready(&inbound).await;
    ready(&outbound).await;
    let out = outbound.bound.outbound[0];
    Pair {
        inbound,
        outbound,
        out,
    }
}
