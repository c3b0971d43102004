//! Inbound mTLS with independent clients (curl, openssl): a valid client
//! SVID gets through; a foreign CA, two URI SANs or no cert are refused.
#![allow(clippy::unwrap_used)]

#[path = "support/net.rs"]
mod net;
#[path = "support/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::process::Command;

fn curl(addr: SocketAddr, client: Option<&pki::SvidFiles>) -> (bool, String) {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "-k",
        "--max-time",
        "10",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(f) = client {
        c.arg("--cert").arg(&f.cert).arg("--key").arg(&f.key);
    }
    c.arg(format!("https://{addr}/hello"));
    let out = c.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (
        out.status.success()
            && text.contains("backend GET /hello")
            && text.trim_end().ends_with("200"),
        text,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_requires_a_valid_client_svid() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/server");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/client");
    let foreign = pki::Ca::new("example.org").write_svid(
        dir.path(),
        "foreign",
        "spiffe://example.org/client",
    );
    let two_uris = ca.issue_two_uris(dir.path());

    let backend = net::http_backend().await;
    let p = net::proxy(&net::inbound_yaml(&server, backend, "http", "")).await;
    net::ready(&p).await;
    let addr = p.bound.inbound[0];

    let client_c = client.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || curl(addr, Some(&client_c)))
        .await
        .unwrap();
    assert!(
        ok,
        "valid client SVID should get 200 from the backend: {out}"
    );

    for (name, files) in [
        ("foreign CA", Some(&foreign)),
        ("two URI SANs", Some(&two_uris)),
        ("no client cert", None),
    ] {
        let f = files.cloned();
        let (ok, out) = tokio::task::spawn_blocking(move || curl(addr, f.as_ref()))
            .await
            .unwrap();
        assert!(!ok, "{name} must be refused: {out}");
        assert!(
            !out.contains("backend GET"),
            "{name} reached the backend: {out}"
        );
    }

    // openssl as an independent client verifies the server's SVID chain too.
    let s = server.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr.to_string(),
                "-verify_return_error",
                "-brief",
            ])
            .arg("-CAfile")
            .arg(&s.bundle)
            .arg("-cert")
            .arg(&client.cert)
            .arg("-key")
            .arg(&client.key)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TLSv1.3"), "openssl handshake: {text}");
    assert!(
        text.contains("Verification: OK"),
        "openssl should verify the server SVID: {text}"
    );

    p.stop().await;
}

/// `openssl s_client -tls1_2` with a client SVID against `addr`; returns
/// (exit ok, stdout + stderr).
fn openssl_tls12(addr: SocketAddr, files: &pki::SvidFiles, extra: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-tls1_2",
            "-brief",
        ])
        .args(extra)
        .arg("-CAfile")
        .arg(&files.bundle)
        .arg("-cert")
        .arg(&files.cert)
        .arg("-key")
        .arg(&files.key)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.success(), text)
}

/// By default a TLS 1.2 peer (Envoy's default upstream maximum) gets in,
/// with an ECDHE + AEAD suite; only CBC or static-RSA suites get nothing.
/// With `tls.min_version: "1.3"` it is refused with a protocol_version
/// alert, counted as `reason="tls_version"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_clients_by_default_and_refused_with_min_13() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("example.org");
    let server = ca.write_svid(dir.path(), "server", "spiffe://example.org/server");
    let client = ca.write_svid(dir.path(), "client", "spiffe://example.org/client");
    let backend = net::http_backend().await;

    let p = net::proxy(&net::inbound_yaml(&server, backend, "http", "")).await;
    net::ready(&p).await;
    let (addr, c) = (p.bound.inbound[0], client.clone());
    let (ok, text) = tokio::task::spawn_blocking(move || openssl_tls12(addr, &c, &[]))
        .await
        .unwrap();
    assert!(ok && text.contains("TLSv1.2"), "TLS 1.2 by default: {text}");
    assert!(
        text.contains("ECDHE-ECDSA-") && (text.contains("GCM") || text.contains("CHACHA20")),
        "{text}"
    );
    let c = client.clone();
    let (ok, text) = tokio::task::spawn_blocking(move || {
        openssl_tls12(
            addr,
            &c,
            &[
                "-cipher",
                "AES128-SHA:ECDHE-ECDSA-AES128-SHA:AES128-GCM-SHA256",
            ],
        )
    })
    .await
    .unwrap();
    assert!(
        !ok || !text.contains("TLSv1.2"),
        "CBC / static RSA suites must be refused: {text}"
    );
    p.stop().await;

    let extra = "tls: { min_version: \"1.3\" }\nops_listen: \"127.0.0.1:0\"";
    let p = net::proxy(&net::inbound_yaml(&server, backend, "http", extra)).await;
    net::ready(&p).await;
    let addr = p.bound.inbound[0];
    let (ok, text) = tokio::task::spawn_blocking(move || openssl_tls12(addr, &client, &[]))
        .await
        .unwrap();
    assert!(!ok, "TLS 1.2 must be refused with min 1.3: {text}");
    assert!(text.contains("protocol version"), "clear alert: {text}");
    let ops = p.bound.ops.unwrap();
    let metrics =
        meshid_tests::eventually_async("the tls_version handshake error", net::WAIT, || async {
            let metrics = net::get_h1(ops, "GET", "/metrics").await.2;
            metrics
                .contains("reason=\"tls_version\"")
                .then_some(metrics)
        })
        .await;
    assert!(
        metrics.contains(
            "meshid_proxy_tls_handshake_errors_total{direction=\"inbound\",reason=\"tls_version\"} 1"
        ),
        "{metrics}"
    );
    p.stop().await;
}
