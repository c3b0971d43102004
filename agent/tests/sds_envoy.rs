//! The SDS server: the xDS protocol against our generated client, and a
//! real Envoy (from `examples/envoy/envoy.yaml`) getting its certificate
//! and trust bundle from the agent, serving mTLS, and rotating in place.

#![allow(clippy::unwrap_used)]

#[path = "workload_api/fixture.rs"]
mod fixture;
#[path = "workload_api/harness.rs"]
mod harness;

use std::path::Path;
use std::time::Duration;

use fixture::{Pki, entry, my_entry, snapshot};
use harness::{SdsAgent, next_message};
use meshid_agent::sds;
use meshid_proto::envoy::pb::envoy::extensions::transport_sockets::tls::v3::{
    Secret, SpiffeCertValidatorConfig, secret,
};
use meshid_proto::envoy::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use meshid_proto::envoy::pb::google::rpc;
use prost::{Message, Name};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

const TD: &str = "example.org";

fn request(names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.into(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        type_url: Secret::type_url(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn secrets(resp: &DiscoveryResponse) -> Vec<Secret> {
    resp.resources
        .iter()
        .map(|a| {
            assert_eq!(a.type_url, Secret::type_url());
            Secret::decode(a.value.as_slice()).unwrap()
        })
        .collect()
}

fn cert_pem(s: &Secret) -> String {
    let Some(secret::Type::TlsCertificate(tls)) = &s.r#type else {
        panic!("{} is not a TLS certificate", s.name)
    };
    let chain = tls.certificate_chain.as_ref().unwrap();
    let Some(
        meshid_proto::envoy::pb::envoy::config::core::v3::data_source::Specifier::InlineBytes(b),
    ) = &chain.specifier
    else {
        panic!("certificate chain is not inline bytes")
    };
    String::from_utf8(b.clone()).unwrap()
}

fn pem_of(der: &[u8]) -> String {
    meshid_identity::x509::to_pem(&[rustls_pki_types::CertificateDer::from(der.to_vec())])
}

#[tokio::test]
async fn stream_secrets_follows_xds_ack_nack_and_pushes_rotations() {
    let pki = Pki::new(TD);
    let e = my_entry("envoy", "spiffe://example.org/envoy");
    let v1 = pki.fresh_svid(e.clone());
    let agent = SdsAgent::start(pki.snapshot(vec![v1.clone()], 1));
    let mut c = agent.client().await;
    let (req_tx, req_rx) = mpsc::channel(8);
    let mut responses = c
        .stream_secrets(ReceiverStream::new(req_rx))
        .await
        .unwrap()
        .into_inner();

    req_tx
        .send(request(&["default", "ROOTCA"], "", ""))
        .await
        .unwrap();
    let r1 = next_message(&mut responses).await;
    assert_eq!(r1.version_info, "1");
    assert!(!r1.nonce.is_empty());
    let s1 = secrets(&r1);
    assert_eq!(s1.len(), 2);
    assert_eq!(s1[0].name, "default");
    assert_eq!(cert_pem(&s1[0]), pem_of(&v1.chain[0]));
    let Some(secret::Type::ValidationContext(vc)) = &s1[1].r#type else {
        panic!("ROOTCA is not a validation context")
    };
    assert!(vc.trusted_ca.is_some());

    // ACK: nothing is sent.
    req_tx
        .send(request(&["default", "ROOTCA"], "1", &r1.nonce))
        .await
        .unwrap();
    // A new generation with the same secrets: nothing is sent either.
    agent.publish(pki.snapshot(vec![v1.clone()], 2));
    // Rotation: pushed.
    let v2 = pki.fresh_svid(e.clone());
    agent.publish(pki.snapshot(vec![v2.clone()], 3));
    let r2 = next_message(&mut responses).await;
    assert_eq!(
        r2.version_info, "3",
        "the first message after the ACK is the rotation"
    );
    assert_ne!(r2.nonce, r1.nonce);
    assert_eq!(cert_pem(&secrets(&r2)[0]), pem_of(&v2.chain[0]));

    // NACK: logged, nothing sent, and the same content is not re-sent on a
    // new generation. A request naming other resources is answered at once,
    // which proves nothing was queued before it.
    let mut nack = request(&["default", "ROOTCA"], "1", &r2.nonce);
    nack.error_detail = Some(rpc::Status {
        code: Code::InvalidArgument as i32,
        message: "test: rejected".into(),
        details: vec![],
    });
    req_tx.send(nack).await.unwrap();
    agent.publish(pki.snapshot(vec![v2.clone()], 4));
    req_tx
        .send(request(&["spiffe://example.org/envoy"], "1", &r2.nonce))
        .await
        .unwrap();
    let r3 = next_message(&mut responses).await;
    let s3 = secrets(&r3);
    assert_eq!(s3.len(), 1);
    assert_eq!(s3[0].name, "spiffe://example.org/envoy");
    assert_eq!(cert_pem(&s3[0]), pem_of(&v2.chain[0]));

    // A stale nonce is ignored; the next rotation is pushed.
    req_tx
        .send(request(&["default"], "", "stale"))
        .await
        .unwrap();
    let v3 = pki.fresh_svid(e);
    agent.publish(pki.snapshot(vec![v3.clone()], 5));
    let r4 = next_message(&mut responses).await;
    let s4 = secrets(&r4);
    assert_eq!(s4[0].name, "spiffe://example.org/envoy");
    assert_eq!(cert_pem(&s4[0]), pem_of(&v3.chain[0]));
}

/// A publish that leaves this Envoy's SVIDs alone (another workload's SVID
/// rotates) pushes nothing; rotating its own SVID pushes at once.
#[tokio::test]
async fn stream_secrets_pushes_only_the_callers_own_rotation() {
    let pki = Pki::new(TD);
    let mine = my_entry("envoy", "spiffe://example.org/envoy");
    let theirs = entry("db", "spiffe://example.org/db", &["uid:4242"]);
    let v1 = pki.fresh_svid(mine.clone());
    let agent = SdsAgent::start(pki.snapshot(vec![v1.clone(), pki.fresh_svid(theirs.clone())], 1));
    let mut c = agent.client().await;
    let (req_tx, req_rx) = mpsc::channel(8);
    let mut responses = c
        .stream_secrets(ReceiverStream::new(req_rx))
        .await
        .unwrap()
        .into_inner();
    req_tx.send(request(&[], "", "")).await.unwrap();
    let r1 = next_message(&mut responses).await;
    assert_eq!(cert_pem(&secrets(&r1)[0]), pem_of(&v1.chain[0]));
    req_tx.send(request(&[], "1", &r1.nonce)).await.unwrap();

    for generation in [2, 3] {
        agent.publish(pki.snapshot(vec![v1.clone(), pki.fresh_svid(theirs.clone())], generation));
    }
    let v2 = pki.fresh_svid(mine);
    agent.publish(pki.snapshot(vec![v2.clone(), pki.fresh_svid(theirs)], 4));
    let r2 = next_message(&mut responses).await;
    assert_eq!(r2.version_info, "4", "the first push is our rotation");
    let s2 = secrets(&r2);
    assert_eq!(cert_pem(&s2[0]), pem_of(&v2.chain[0]));
    assert!(
        s2.iter().all(|s| s.name != "spiffe://example.org/db"),
        "another workload's secret is never sent"
    );
}

#[tokio::test]
async fn fetch_secrets_all_uses_spiffe_validator_and_skips_unknown_names() {
    let pki = Pki::new(TD);
    let partner = Pki::new("partner.test");
    let mut e = my_entry("envoy", "spiffe://example.org/envoy");
    e.federates_with = vec![partner.td.clone()];
    let mine = pki.fresh_svid(e);
    let not_mine = pki.fresh_svid(entry("db", "spiffe://example.org/db", &["uid:4242"]));
    let agent = SdsAgent::start(snapshot(
        &pki.td,
        vec![pki.bundle(), partner.bundle()],
        vec![mine, not_mine],
        7,
    ));
    let mut c = agent.client().await;
    let resp = c
        .fetch_secrets(request(
            &[
                "ALL",
                "nope",
                "spiffe://example.org/db",
                "spiffe://partner.test",
            ],
            "",
            "",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.version_info, "7");
    let s = secrets(&resp);
    let names: Vec<_> = s.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["ALL", "spiffe://partner.test"]);
    let Some(secret::Type::ValidationContext(vc)) = &s[0].r#type else {
        panic!("ALL is not a validation context")
    };
    let custom = vc.custom_validator_config.as_ref().unwrap();
    assert_eq!(custom.name, sds::SPIFFE_VALIDATOR);
    let any = custom.typed_config.as_ref().unwrap();
    assert_eq!(any.type_url, SpiffeCertValidatorConfig::type_url());
    let cfg = SpiffeCertValidatorConfig::decode(any.value.as_slice()).unwrap();
    let mut tds: Vec<_> = cfg.trust_domains.iter().map(|t| t.name.as_str()).collect();
    tds.sort();
    assert_eq!(tds, ["example.org", "partner.test"]);

    let err = c
        .delta_secrets(tokio_stream::iter(vec![DeltaDiscoveryRequest::default()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}

#[tokio::test]
async fn caller_without_entry_is_denied() {
    let pki = Pki::new(TD);
    let other = pki.fresh_svid(entry("db", "spiffe://example.org/db", &["uid:4242"]));
    let agent = SdsAgent::start(pki.snapshot(vec![other], 1));
    let mut c = agent.client().await;
    let err = c
        .fetch_secrets(request(&["default"], "", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
}

// === Envoy ===

/// A plain HTTP/1.1 backend answering 200 "hello from backend".
async fn backend() -> u16 {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"hello from backend"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

/// One curl request through Envoy with the client SVID; returns the HTTP
/// status (0 when the connection or handshake failed) and the body.
async fn curl(dir: &Path, port: u16) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--cert")
        .arg(dir.join("client.pem"))
        .arg("--key")
        .arg(dir.join("client.key"))
        .arg("--cacert")
        .arg(dir.join("root.pem"))
        .arg("--resolve")
        .arg(format!("envoy.example.org:{port}:127.0.0.1"))
        .arg(format!("https://envoy.example.org:{port}/"))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Serial numbers of the certificates Envoy holds (admin `/certs`),
/// lower-case hex without leading zeros.
async fn envoy_serials(admin_port: u16) -> Vec<String> {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{admin_port}/certs"))
        .output()
        .await
        .unwrap();
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return vec![];
    };
    let mut serials = vec![];
    for cert in json["certificates"].as_array().into_iter().flatten() {
        for c in cert["cert_chain"].as_array().into_iter().flatten() {
            if let Some(s) = c["serial_number"].as_str() {
                serials.push(normalize_serial(s));
            }
        }
    }
    serials
}

fn normalize_serial(s: &str) -> String {
    let s = s.to_ascii_lowercase();
    let t = s.trim_start_matches('0');
    if t.is_empty() { "0".into() } else { t.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_serves_mtls_with_sds_secrets_and_rotates_without_restart() {
    let Some(envoy) = meshid_tests::Envoy::from_env("the real-Envoy SDS test") else {
        return;
    };
    let pki = Pki::new(TD);
    let mut envoy_entry = my_entry("envoy", "spiffe://example.org/envoy");
    envoy_entry.dns_names = vec!["envoy.example.org".into()];
    let v1 = pki.fresh_svid(envoy_entry.clone());
    // The client's identity: an entry no local process matches; the test
    // uses its key directly.
    let client = pki.fresh_svid(entry(
        "client",
        "spiffe://example.org/client",
        &["uid:4242"],
    ));
    let agent = SdsAgent::start(pki.snapshot(vec![v1.clone(), client.clone()], 1));
    let dir = agent.dir.path().to_owned();
    std::fs::write(
        dir.join("client.pem"),
        meshid_identity::x509::to_pem(&client.chain),
    )
    .unwrap();
    std::fs::write(dir.join("client.key"), client.key.to_pkcs8_pem().as_bytes()).unwrap();
    std::fs::write(dir.join("root.pem"), pki.bundle().to_pem()).unwrap();

    let backend_port = backend().await;
    let admin_port = meshid_tests::free_port();
    let listen_port = meshid_tests::free_port();
    let config = meshid_tests::envoy::example_config(&[
        ("SDS_SOCKET", agent.socket.display().to_string()),
        ("ADMIN_PORT", admin_port.to_string()),
        ("LISTEN_PORT", listen_port.to_string()),
        ("BACKEND_PORT", backend_port.to_string()),
        ("TRUST_DOMAIN", TD.to_string()),
    ]);
    std::fs::write(dir.join("envoy.yaml"), config).unwrap();
    let mut envoy = envoy.spawn(&dir.join("envoy.yaml"), &dir);
    let envoy_pid = envoy.id();

    // Envoy's listener warms until SDS delivered both secrets.
    let (code, body) = meshid_tests::eventually_async(
        "Envoy to serve mTLS with secrets from SDS",
        Duration::from_secs(60),
        || async {
            let (code, body) = curl(&dir, listen_port).await;
            (code == 200).then_some((code, body))
        },
    )
    .await;
    assert_eq!(
        (code, body.as_str()),
        (200, "hello from backend"),
        "{}",
        envoy.log()
    );
    let serial = |s: &str| normalize_serial(s);
    assert!(
        envoy_serials(admin_port)
            .await
            .contains(&serial(&v1.serial))
    );

    // Rotation in the middle of a run of requests: every request succeeds,
    // and Envoy ends up presenting the new certificate.
    let v2 = pki.fresh_svid(envoy_entry);
    assert_ne!(v1.serial, v2.serial);
    let mut results = vec![];
    for i in 0..40 {
        if i == 10 {
            agent.publish(pki.snapshot(vec![v2.clone(), client.clone()], 2));
        }
        results.push(curl(&dir, listen_port).await.0);
    }
    assert!(
        results.iter().all(|c| *c == 200),
        "failed requests during rotation: {results:?}\n{}",
        envoy.log()
    );
    let serials = meshid_tests::eventually_async(
        "Envoy to hold the rotated certificate",
        Duration::from_secs(30),
        || async {
            let s = envoy_serials(admin_port).await;
            s.contains(&serial(&v2.serial)).then_some(s)
        },
    )
    .await;
    assert!(
        !serials.contains(&serial(&v1.serial)),
        "old certificate still loaded: {serials:?}"
    );
    assert_eq!(curl(&dir, listen_port).await.0, 200);
    assert!(envoy.is_running(), "Envoy exited:\n{}", envoy.log());
    assert_eq!(envoy.id(), envoy_pid, "same Envoy process, no restart");

    // A client without a certificate is refused by Envoy's mTLS.
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(dir.join("root.pem"))
        .arg("--resolve")
        .arg(format!("envoy.example.org:{listen_port}:127.0.0.1"))
        .arg(format!("https://envoy.example.org:{listen_port}/"))
        .output()
        .await
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&out.stdout), "200");
}
