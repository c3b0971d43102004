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
