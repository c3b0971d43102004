//! The same proxy on each TLS backend (rustls; OpenSSL with the `openssl`
//! feature): FIPS algorithms as `openssl s_client` negotiates them, mixed
//! backend pairs, session resumption, handshake refusals counted by reason
//! and explained in the 502 body, PERMISSIVE plaintext detection.
#![allow(clippy::unwrap_used)]

#[path = "support/net.rs"]
mod net;
#[path = "support/pki.rs"]
mod pki;

use meshid_identity::tls::{PeerMatch, TlsBackend};
use meshid_proxy::identity::FileSource;
use meshid_proxy::run::Running;
use meshid_proxy::tls::{ClientSettings, TlsConfigs, TlsOptions};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every backend this build has.
fn backends() -> &'static [TlsBackend] {
    TlsBackend::compiled()
}

/// An inbound proxy on `backend` with `extra` YAML, ready.
async fn inbound(
    files: &pki::SvidFiles,
    app: SocketAddr,
    backend: TlsBackend,
    extra: &str,
) -> Running {
    let extra = format!("tls_backend: {}\n{extra}", backend.as_str());
    let p = net::proxy(&net::inbound_yaml(files, app, "http", &extra)).await;
    net::ready(&p).await;
    p
}

/// `openssl s_client` to `addr` with the client SVID `files` and `args`;
/// returns (exit ok, stdout + stderr).
async fn s_client(addr: SocketAddr, files: &pki::SvidFiles, args: &[&str]) -> (bool, String) {
    let mut c = Command::new("openssl");
    c.args(["s_client", "-connect", &addr.to_string(), "-brief"])
        .args(args)
        .arg("-cert")
        .arg(&files.cert)
        .arg("-key")
        .arg(&files.key)
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.success(), text)
}

/// True if s_client's output says the handshake completed.
fn connected(text: &str) -> bool {
    text.contains("CONNECTION ESTABLISHED") || text.contains("Ciphersuite:")
}

/// `tls: { algorithms: fips }`: a client offering X25519 and ChaCha20
/// first gets P-256 and AES-GCM (TLS 1.3 and 1.2); one offering only
/// X25519 or only ChaCha20 is refused. The same offers get through a
/// default listener. On both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fips_algorithms_are_what_the_handshake_negotiates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/server");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/client");
    let app = net::http_backend().await;
    let tls13_pref = [
        "-groups",
        "X25519:P-256",
        "-ciphersuites",
        "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
    ];
    let tls12_pref = [
        "-tls1_2",
        "-groups",
        "X25519:P-256",
        "-cipher",
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256",
    ];
    let x25519_only: &[&str] = &["-groups", "X25519"];
    let chacha_only: &[&str] = &["-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"];
    let chacha12_only: &[&str] = &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"];
    for &backend in backends() {
        let name = backend.as_str();
        let fips = inbound(&server, app, backend, "tls: { algorithms: fips }\n").await;
        let addr = fips.bound.inbound[0];

        let (ok, text) = s_client(addr, &client, &tls13_pref).await;
        assert!(ok && connected(&text), "{name}: {text}");
        assert!(text.contains("TLSv1.3"), "{name}: {text}");
        assert!(
            text.contains("Ciphersuite: TLS_AES_128_GCM_SHA256"),
            "{name}: {text}"
        );
        assert!(
            text.contains("prime256v1") || text.contains("P-256"),
            "{name}: P-256 key exchange: {text}"
        );
        assert!(!text.contains("X25519"), "{name}: {text}");

        let (ok, text) = s_client(addr, &client, &tls12_pref).await;
        assert!(ok && connected(&text), "{name}: {text}");
        assert!(
            text.contains("TLSv1.2") && text.contains("ECDHE-ECDSA-AES128-GCM-SHA256"),
            "{name}: {text}"
        );
        assert!(
            text.contains("prime256v1") || text.contains("P-256"),
            "{name}: {text}"
        );

        for refused in [x25519_only, chacha_only, chacha12_only] {
            let (ok, text) = s_client(addr, &client, refused).await;
            assert!(
                !ok && !connected(&text),
                "{name}: {refused:?} must be refused: {text}"
            );
        }
        fips.stop().await;

        let default = inbound(&server, app, backend, "").await;
        let addr = default.bound.inbound[0];
        for offer in [x25519_only, chacha_only, chacha12_only] {
            let (ok, text) = s_client(addr, &client, offer).await;
            assert!(ok && connected(&text), "{name}: default, {offer:?}: {text}");
        }
        let (_, text) = s_client(addr, &client, &tls13_pref).await;
        assert!(
            text.contains("X25519"),
            "{name}: default lists keep X25519: {text}"
        );
        default.stop().await;
    }
}

/// Every pairing of backends carries HTTP/1.1, HTTP/2 and TCP between
/// sidecars, and a wrong server ID gets the same 502 text on each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_pairing_interoperates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/backend");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/frontend");
    let app = net::http_backend().await;
    let echo = net::echo_backend().await;
    for &inb in backends() {
        for &outb in backends() {
            let case = format!("{} -> {}", outb.as_str(), inb.as_str());
            let http_in = inbound(&server, app, inb, "").await;
            let extra = format!("tls_backend: {}\n", inb.as_str());
            let tcp_in = net::proxy(&net::inbound_yaml(&server, echo, "tcp", &extra)).await;
            net::ready(&tcp_in).await;
            let out = |to: SocketAddr, id: &str, protocol: &str| {
                net::outbound_yaml(&client, to, id, protocol)
                    + &format!("tls_backend: {}\n", outb.as_str())
            };
            let http_out = net::proxy(&out(
                http_in.bound.inbound[0],
                "spiffe://example.org/backend",
                "http",
            ))
            .await;
            let tcp_out = net::proxy(&out(
                tcp_in.bound.inbound[0],
                "spiffe://example.org/backend",
                "tcp",
            ))
            .await;
            let wrong = net::proxy(&out(
                http_in.bound.inbound[0],
                "spiffe://example.org/other",
                "http",
            ))
            .await;
            for p in [&http_out, &tcp_out, &wrong] {
                net::ready(p).await;
            }
            let (status, _, body) = net::get_h1(http_out.bound.outbound[0], "GET", "/a").await;
            assert_eq!((status, body.as_str()), (200, "backend GET /a"), "{case}");
            let (status, headers, body) = net::get_h2(http_out.bound.outbound[0], "/b").await;
            assert_eq!((status, body.as_str()), (200, "backend GET /b"), "{case}");
            assert_eq!(headers["x-seen-version"], "HTTP/1.1", "{case}");
            assert_eq!(
                net::tcp_roundtrip(tcp_out.bound.outbound[0], b"ping").await,
                b"ping",
                "{case}"
            );
            let (status, headers, body) = net::get_h1(wrong.bound.outbound[0], "GET", "/c").await;
            assert_eq!(status, 502, "{case}: {body}");
            assert_eq!(headers["x-meshid-error"], "peer_id_mismatch", "{case}");
            assert!(
                body.contains(
                    "presented spiffe://example.org/backend, expected spiffe://example.org/other"
                ),
                "{case}: {body}"
            );
            for p in [http_out, tcp_out, wrong, http_in, tcp_in] {
                p.stop().await;
            }
        }
    }
}

/// A client config with resumption on resumes its session with an inbound
/// listener on either backend; with resumption off it never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_across_backends() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/backend");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/frontend");
    let id = FileSource::new(
        client.cert.clone(),
        client.key.clone(),
        client.bundle.clone(),
        Duration::from_secs(1),
    )
    .load(SystemTime::now())
    .unwrap();
    let app = net::http_backend().await;
    for &inb in backends() {
        let p = inbound(&server, app, inb, "").await;
        let addr = p.bound.inbound[0];
        for &outb in backends() {
            for resumption in [true, false] {
                let case = format!(
                    "{} -> {}, resumption {resumption}",
                    outb.as_str(),
                    inb.as_str()
                );
                let settings = ClientSettings {
                    peer: PeerMatch::Any,
                    alpn: vec![b"http/1.1".to_vec()],
                    h2: false,
                    resumption,
                };
                let opts = TlsOptions {
                    backend: outb,
                    ..TlsOptions::default()
                };
                let cfgs = TlsConfigs::build(&id, &opts, &[settings]).unwrap();
                let mut resumed = vec![];
                for i in 0..2 {
                    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                    let tls = cfgs.connect((0, false), addr, tcp).await.unwrap();
                    resumed.push(tls.resumed());
                    // A request, so the client reads the session tickets.
                    let mut tls = tls;
                    let req = format!(
                        "GET /r{i} HTTP/1.1\r\nhost: svc.test\r\nconnection: close\r\n\r\n"
                    );
                    tls.write_all(req.as_bytes()).await.unwrap();
                    let mut resp = Vec::new();
                    let _ = tls.read_to_end(&mut resp).await;
                    // A clean close: OpenSSL does not resume a session whose
                    // connection ended without close_notify.
                    let _ = tls.shutdown().await;
                    assert!(
                        resp.starts_with(b"HTTP/1.1 200"),
                        "{case}: {}",
                        String::from_utf8_lossy(&resp)
                    );
                }
                assert_eq!(resumed, [false, resumption], "{case}");
            }
        }
        p.stop().await;
    }
}

/// Refused clients are counted by the same reasons on both backends: a
/// root with the trust domain's name but another key (`bad_signature`),
/// another trust domain's CA (`unknown_issuer`), no client certificate
/// (`no_client_cert`); a valid client still completes its handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_by_reason_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/server");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/client");
    let impostor = pki::Ca::new("example.org").write_svid(
        dir.path(),
        "impostor",
        "spiffe://example.org/client",
    );
    let foreign =
        pki::Ca::new("other.org").write_svid(dir.path(), "foreign", "spiffe://other.org/client");
    let app = net::http_backend().await;
    for &backend in backends() {
        let name = backend.as_str();
        let p = inbound(&server, app, backend, "ops_listen: \"127.0.0.1:0\"\n").await;
        let addr = p.bound.inbound[0];
        for refused in [&impostor, &foreign] {
            s_client(addr, refused, &[]).await;
        }
        let (ok, text) = s_client(addr, &client, &[]).await;
        assert!(ok && connected(&text), "{name}: {text}");
        // No client certificate at all: s_client without -cert/-key.
        tokio::task::spawn_blocking(move || {
            Command::new("openssl")
                .args(["s_client", "-connect", &addr.to_string(), "-brief"])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let ops = p.bound.ops.unwrap();
        let series = |reason: &str| {
            format!(
                "meshid_proxy_tls_handshake_errors_total{{direction=\"inbound\",reason=\"{reason}\"}} 1"
            )
        };
        let reasons = ["bad_signature", "unknown_issuer", "no_client_cert"];
        let counted = || async {
            let m = net::get_h1(ops, "GET", "/metrics").await.2;
            reasons.iter().all(|r| m.contains(&series(r))).then_some(m)
        };
        let what = format!("{name}: {reasons:?} counted once each");
        let metrics = meshid_tests::eventually_async(&what, net::WAIT, counted).await;
        let errors = metrics
            .lines()
            .filter(|l| l.starts_with("meshid_proxy_tls_handshake_errors_total{"))
            .count();
        assert_eq!(errors, reasons.len(), "{name}: no other reason: {metrics}");
        assert!(
            metrics.contains("meshid_proxy_tls_handshakes_total{direction=\"inbound\"} 1"),
            "{name}: only the valid client completed a handshake: {metrics}"
        );
        p.stop().await;
    }
}

/// PERMISSIVE peer authentication on every backend: plaintext (first byte
/// not a TLS handshake) and mTLS are both let in on the same listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_detection_is_the_same_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/backend");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/frontend");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "policies: [{ name: meshid/allow-all, action: ALLOW, rules: [{}] }]\n\
         peerAuthentication: [{ name: shop/default, scope: namespace, mode: PERMISSIVE }]\n",
    )
    .unwrap();
    let app = net::http_backend().await;
    for &backend in backends() {
        let name = backend.as_str();
        let p = inbound(&server, app, backend, &format!("policy: {policy:?}\n")).await;
        let listen = p.bound.inbound[0];
        let (status, _, body) = net::get_h1(listen, "GET", "/plain").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "backend GET /plain"),
            "{name}"
        );
        let out = net::proxy(
            &(net::outbound_yaml(&client, listen, "spiffe://example.org/backend", "http")
                + &format!("tls_backend: {name}\n")),
        )
        .await;
        net::ready(&out).await;
        let (status, _, body) = net::get_h1(out.bound.outbound[0], "GET", "/mtls").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "backend GET /mtls"),
            "{name}"
        );
        out.stop().await;
        p.stop().await;
    }
}
