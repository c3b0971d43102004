//! The Workload API identity source against an in-test agent on a Unix
//! socket: the first SVID is loaded, a pushed rotation replaces it, and the
//! spec's `workload.spiffe.io` header is sent.
#![allow(clippy::unwrap_used)]

#[path = "support/pki.rs"]
mod pki;

use meshid_proto::workload::{X509svid, X509svidResponse};
use meshid_proxy::identity::{IdentitySource, WorkloadApiSource};
use meshid_tests::FakeWorkloadApi;

fn response(ca: &pki::Ca, id: &str) -> (X509svidResponse, String) {
    let (cert, key) = ca.issue(id);
    let serial = x509_parser::parse_x509_certificate(&cert)
        .unwrap()
        .1
        .raw_serial_as_string()
        .replace(':', "");
    let svid = X509svid {
        spiffe_id: id.into(),
        x509_svid: cert.to_vec(),
        x509_svid_key: key.pkcs8_der().to_vec(),
        bundle: ca.cert.to_vec(),
        hint: String::new(),
    };
    (
        X509svidResponse {
            svids: vec![svid],
            ..Default::default()
        },
        serial,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_api_source_follows_the_agent_stream() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let agent = FakeWorkloadApi::serve(&sock);
    let ca = pki::Ca::new("example.org");
    let (first, serial1) = response(&ca, "spiffe://example.org/web");
    agent.push(first).await;

    let mut watch = Box::new(WorkloadApiSource::new(sock)).start();
    let id = watch
        .wait_for(Option::is_some)
        .await
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(id.spiffe_id.as_str(), "spiffe://example.org/web");
    assert_eq!(id.serial, serial1);
    assert!(agent.saw_header());

    // A response whose SPIFFE ID field lies about the certificate is ignored…
    let (mut bad, _) = response(&ca, "spiffe://example.org/web");
    bad.svids[0].spiffe_id = "spiffe://example.org/admin".into();
    agent.push(bad).await;
    // …and the next valid rotation is published.
    let (second, serial2) = response(&ca, "spiffe://example.org/web");
    agent.push(second).await;
    let id = watch
        .wait_for(|i| i.as_ref().is_some_and(|i| i.serial != serial1))
        .await
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(id.serial, serial2);
}
