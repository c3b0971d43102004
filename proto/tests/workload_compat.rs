//! Wire compatibility of our Workload API definition: the independent
//! `spiffe` crate's client calls a server built from `proto/` (the fake
//! Workload API of `meshid-tests`) over a Unix socket, and gets what the
//! server sent.

#![allow(clippy::unwrap_used)]

use meshid_proto::workload::spiffe_workload_api_server::SpiffeWorkloadApiServer;
use meshid_proto::workload::{X509svid, X509svidResponse};
use meshid_tests::FakeWorkloadApi;

fn test_svid() -> X509svid {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://example.org".try_into().unwrap(),
    )];
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, &ca_key);

    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.is_ca = rcgen::IsCa::ExplicitNoCa;
    leaf.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://example.org/workload".try_into().unwrap(),
    )];
    leaf.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let leaf_cert = leaf.signed_by(&key, &issuer).unwrap();
    X509svid {
        spiffe_id: "spiffe://example.org/workload".into(),
        x509_svid: leaf_cert.der().to_vec(),
        x509_svid_key: key.serialize_der(),
        bundle: ca_cert.der().to_vec(),
        hint: "internal".into(),
    }
}

#[tokio::test]
async fn spiffe_crate_client_talks_to_our_service() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let agent = FakeWorkloadApi::serve(&sock);
    agent
        .push(X509svidResponse {
            svids: vec![test_svid()],
            ..Default::default()
        })
        .await;

    let client = spiffe::WorkloadApiClient::connect_to(format!("unix:{}", sock.display()))
        .await
        .unwrap();
    let svid = client.fetch_x509_svid().await.unwrap();
    assert_eq!(
        svid.spiffe_id().to_string(),
        "spiffe://example.org/workload"
    );
    assert_eq!(svid.hint(), Some("internal"));
    let bundles = client.fetch_x509_bundles().await.unwrap();
    let td = spiffe::TrustDomain::new("example.org").unwrap();
    assert!(bundles.get(&td).is_some(), "bundle for example.org");
    assert!(agent.saw_header(), "the client sent workload.spiffe.io");
}

#[tokio::test]
async fn method_paths_have_no_package() {
    // The spec's paths are `/SpiffeWorkloadAPI/<Method>`.
    assert_eq!(
        <SpiffeWorkloadApiServer<()> as tonic::server::NamedService>::NAME,
        "SpiffeWorkloadAPI"
    );
}
