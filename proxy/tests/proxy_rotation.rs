//! Rotation under continuous traffic, on each TLS backend: both sidecars
//! get new SVIDs while requests flow over keep-alive and fresh connections;
//! nothing fails, new handshakes present the new certificate and a TLS
//! connection opened before the rotation keeps working.
#![allow(clippy::unwrap_used)]

#[path = "support/net.rs"]
mod net;
#[path = "support/pki.rs"]
mod pki;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use meshid_identity::tls::{PeerMatch, TlsBackend};
use meshid_proxy::config::TlsVersion;
use meshid_proxy::identity::FileSource;
use meshid_proxy::tls::{ClientSettings, ClientTls, TlsConfigs, TlsOptions};
use meshid_tests::eventually_async;
use net::WAIT;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use x509_parser::prelude::{FromDer, X509Certificate};

fn serial(der: &[u8]) -> String {
    X509Certificate::from_der(der)
        .unwrap()
        .1
        .raw_serial_as_string()
}

/// Handshakes directly with the inbound listener as `client`, on `backend`.
async fn handshake(addr: SocketAddr, client: &pki::SvidFiles, backend: TlsBackend) -> ClientTls {
    let src = FileSource::new(
        client.cert.clone(),
        client.key.clone(),
        client.bundle.clone(),
        Duration::from_secs(1),
    );
    let id = src.load(SystemTime::now()).unwrap();
    let settings = ClientSettings {
        peer: PeerMatch::Any,
        alpn: vec![b"http/1.1".to_vec()],
        h2: false,
        resumption: false,
    };
    let opts = TlsOptions {
        backend,
        min_version: TlsVersion::Tls13,
        ..TlsOptions::default()
    };
    let cfgs = TlsConfigs::build(&id, &opts, &[settings]).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    cfgs.connect((0, false), addr, tcp).await.unwrap()
}

/// The serial of the certificate the inbound listener presents to a new
/// handshake.
async fn served_serial(addr: SocketAddr, client: &pki::SvidFiles, backend: TlsBackend) -> String {
    serial(&handshake(addr, client, backend).await.peer_chain()[0])
}

/// One HTTP/1.1 request on `send`; its status.
async fn status(
    send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
) -> u16 {
    let req = http::Request::builder()
        .uri(path)
        .header("host", "svc.test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    match send.send_request(req).await {
        Ok(resp) => net::split(resp).await.0,
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_traffic_drops_nothing() {
    rotation_under_traffic(TlsBackend::Rustls).await;
}

#[cfg(feature = "openssl")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_traffic_drops_nothing_on_openssl() {
    rotation_under_traffic(TlsBackend::Openssl).await;
}

async fn rotation_under_traffic(tls: TlsBackend) {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/backend");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/frontend");
    let backend = net::http_backend().await;
    let chosen = format!("tls_backend: {}\n", tls.as_str());
    let inbound = net::proxy(&net::inbound_yaml(&server, backend, "http", &chosen)).await;
    let outbound = net::proxy(
        &(net::outbound_yaml(
            &client,
            inbound.bound.inbound[0],
            "spiffe://example.org/backend",
            "http",
        ) + &chosen),
    )
    .await;
    net::ready(&inbound).await;
    net::ready(&outbound).await;
    let in_addr = inbound.bound.inbound[0];
    let out = outbound.bound.outbound[0];
    let old = served_serial(in_addr, &client, tls).await;
    // A TLS connection straight to the inbound listener, opened before the
    // rotation and used again after it.
    let (mut held, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(handshake(in_addr, &client, tls).await))
            .await
            .unwrap();
    tokio::spawn(conn);
    assert_eq!(status(&mut held, "/held/before").await, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(out).await.unwrap();
            let (mut ka, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(conn);
            // Bounded: at most 5000 rounds even if the main task never stops us.
            for i in 0..5000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let r1 = status(&mut ka, &format!("/ka/{i}")).await;
                let (r2, _, _) = net::get_h1(out, "GET", &format!("/fresh/{i}")).await;
                for r in [r1, r2] {
                    if r == 200 { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    // Let traffic start, then rotate both sidecars' SVIDs.
    let ok_reaches = |n: u64| {
        let ok = ok.clone();
        async move { (ok.load(Ordering::Relaxed) >= n).then_some(()) }
    };
    eventually_async("20 requests before the rotation", WAIT, || ok_reaches(20)).await;
    let (cert, key) = ca.issue("spiffe://example.org/backend");
    pki::write_pair(&server, &cert, &key);
    let (ccert, ckey) = ca.issue("spiffe://example.org/frontend");
    pki::write_pair(&client, &ccert, &ckey);
    let new = serial(&cert);
    assert_ne!(old, new);

    eventually_async(
        "new handshakes to present the rotated SVID",
        WAIT,
        || async { (served_serial(in_addr, &client, tls).await == new).then_some(()) },
    )
    .await;
    assert_eq!(
        status(&mut held, "/held/after").await,
        200,
        "a connection from before the rotation keeps working"
    );
    let after = ok.load(Ordering::Relaxed);
    eventually_async("40 requests after the rotation", WAIT, || {
        ok_reaches(after + 40)
    })
    .await;
    stop.store(true, Ordering::Release);
    traffic.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during rotation"
    );
    assert!(ok.load(Ordering::Relaxed) >= after + 40);
    assert_eq!(inbound.shared.tls.current().map(|c| c.backend()), Some(tls));
}

/// Identity files emptied or cut short by a non-atomic writer keep the
/// previous identity in force; each rejection is counted once, and the
/// next complete set of files is picked up.
#[tokio::test]
async fn truncated_identity_files_keep_the_previous_identity() {
    use meshid_proxy::identity::IdentitySource;
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let files = ca.write_svid(dir.path(), "svc", "spiffe://example.org/svc");
    let src = FileSource::new(
        files.cert.clone(),
        files.key.clone(),
        files.bundle.clone(),
        Duration::from_millis(10),
    );
    let metrics = src.reload_metrics().clone();
    let rx = Box::new(src).start();
    let first = rx.borrow().as_ref().unwrap().serial.clone();
    let wait_rejected = |n: u64| {
        let metrics = metrics.clone();
        async move {
            eventually_async(&format!("rejection {n} to be counted"), WAIT, || async {
                (metrics.count("rejected") >= n).then_some(())
            })
            .await;
        }
    };
    let pem = std::fs::read_to_string(&files.cert).unwrap();
    let bundle = std::fs::read_to_string(&files.bundle).unwrap();
    for (n, (path, text)) in [
        (&files.cert, String::new()),
        (&files.cert, pem[..pem.len() / 2].to_owned()),
        (&files.bundle, String::new()),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(path, text).unwrap();
        wait_rejected(n as u64 + 1).await;
        assert_eq!(rx.borrow().as_ref().unwrap().serial, first, "step {n}");
        if path == &files.cert {
            std::fs::write(path, &pem).unwrap();
        }
    }
    std::fs::write(&files.bundle, bundle).unwrap();
    let (cert, key) = ca.issue("spiffe://example.org/svc");
    pki::write_pair(&files, &cert, &key);
    eventually_async("the next complete files to be loaded", WAIT, || async {
        (rx.borrow().as_ref().unwrap().serial != first).then_some(())
    })
    .await;
    assert_ne!(rx.borrow().as_ref().unwrap().serial, first);
    assert!(metrics.count("ok") >= 1);
}
