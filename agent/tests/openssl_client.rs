//! The agent's CA client on OpenSSL (`tls_backend = "openssl"`) against a
//! CA on rustls (the in-memory CA behind the rustls gRPC server): the whole
//! agent attests, syncs, gets SVIDs signed and renews its own SVID after a
//! root rotation; the CA stays pinned to its SPIFFE ID on attestation and
//! on every mTLS call (`WrongCa`, nothing sent); `fips = true` is refused
//! at start-up.
#![cfg(feature = "openssl")]
#![allow(clippy::unwrap_used)]

#[path = "support/fake_ca.rs"]
mod fake_ca;
#[path = "support/fake_ca_server.rs"]
mod fake_ca_server;
#[path = "support/tls_peer.rs"]
mod tls_peer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fake_ca::FakeCa;
use fake_ca_server::{CA_ID, FakeCaServer};
use meshid_agent::attest::{AttestConfig, AttestError, Attestor, store};
use meshid_agent::config::{AgentConfig, JoinToken};
use meshid_agent::node_client::{AgentCredentials, CaClient, CaError, GrpcCaClient};
use meshid_identity::SpiffeId;
use meshid_identity::tls::TlsBackend;
use meshid_identity::x509::authority_key_id;
use meshid_runtime::clock::{SharedClock, SystemClock};
use tls_peer::TlsPeer;

/// How long the agent may take for each step (syncs every 200 ms).
const WITHIN: Duration = Duration::from_secs(20);
const TOKEN: &str = "join-token-for-the-openssl-agent";

/// A CA on the wall clock (both TLS stacks check validity at real time).
fn ca() -> Arc<FakeCa> {
    let clock: SharedClock = Arc::new(SystemClock);
    let ca = FakeCa::new(clock);
    ca.lock().tokens.insert(TOKEN.into());
    ca
}

fn toml(dir: &Path, server: &FakeCaServer, extra: &str) -> String {
    format!(
        "trust_domain = \"example.org\"\nca_address = {:?}\n\
         trust_bundle_file = {:?}\ndata_dir = {:?}\nworkload_api_socket = {:?}\n\
         sync_interval = \"200ms\"\njoin_token = {TOKEN:?}\n{extra}",
        server.address(),
        dir.join("ca.pem").display().to_string(),
        dir.join("data").display().to_string(),
        dir.join("run/agent.sock").display().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_on_openssl_attests_syncs_signs_and_renews_against_a_rustls_ca() {
    let ca = ca();
    ca.add_entry("e0", "/api", 4242);
    let k1 = ca.key_id();
    ca.set_keys(&[&k1], &[], 60);
    let server = FakeCaServer::start(ca.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("ca.pem"),
        meshid_identity::x509::to_pem(&[ca.root()]),
    )
    .unwrap();
    let config =
        AgentConfig::from_toml(&toml(tmp.path(), &server, "tls_backend = \"openssl\"\n")).unwrap();
    assert_eq!(config.tls_backend, TlsBackend::Openssl);

    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(meshid_agent::run::run(config, async {
        let _ = rx.await;
    }));
    meshid_tests::eventually_async(
        "attested, synced and signed over OpenSSL",
        WITHIN,
        || async { (ca.lock().batches.len() == 1).then_some(()) },
    )
    .await;
    assert_eq!(ca.lock().attests, 1);

    // A rotation and a taint of the old key: the agent renews its own SVID
    // (mTLS with the old SVID) under the new key.
    ca.rotate();
    let k2 = ca.key_id();
    ca.set_keys(&[&k2], &[&k1], 60);
    meshid_tests::eventually_async("the agent SVID renewed over OpenSSL", WITHIN, || async {
        store::load(&tmp.path().join("data"), &ca.td)
            .ok()
            .flatten()
            .filter(|s| authority_key_id(&s.chain[0]) == Some(k2.clone()))
    })
    .await;
    assert!(ca.lock().renewals >= 1);
    assert!(!task.is_finished(), "still running");
    stop.send(()).unwrap();
    tokio::time::timeout(WITHIN, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// An OpenSSL client that requires the CA to present [`CA_ID`].
fn client(address: &str) -> GrpcCaClient {
    GrpcCaClient::new(address, SpiffeId::parse(CA_ID).unwrap())
        .unwrap()
        .with_backend(TlsBackend::Openssl)
}

#[tokio::test]
async fn a_workload_svid_at_the_ca_address_gets_no_token_and_no_mtls_call() {
    let ca = ca();
    let (chain, key) = ca.issue("spiffe://example.org/ns/evil");
    let evil = TlsPeer::start(chain, &key).await;

    let dir = tempfile::tempdir().unwrap();
    let err = Attestor::new(
        AttestConfig {
            trust_domain: ca.td.clone(),
            data_dir: dir.path().to_owned(),
            join_token: Some(JoinToken::new(TOKEN)),
            k8s_psat: None,
            bootstrap_bundle: Some(ca.trust_bundle()),
            renew_fraction: 0.5,
        },
        Arc::new(client(&evil.address())),
        Arc::new(SystemClock),
    )
    .start()
    .await
    .unwrap_err();
    match &err {
        AttestError::Ca(CaError::WrongCa {
            expected,
            presented,
        }) => {
            assert_eq!(expected.as_str(), CA_ID);
            assert_eq!(presented.as_str(), "spiffe://example.org/ns/evil");
        }
        other => panic!("expected WrongCa, got {other}"),
    }
    evil.wait_for_handshakes(1).await;
    assert!(!evil.received_contains(TOKEN.as_bytes()));

    // With an agent SVID (mTLS): refused the same way, nothing sent.
    let mtls = client(&evil.address());
    let (chain, key) = ca.issue("spiffe://example.org/meshid/agent/join_token/x");
    mtls.set_bundles(Arc::new(std::iter::once(ca.trust_bundle()).collect()));
    mtls.set_credentials(Some(AgentCredentials { chain, key }));
    let err = mtls.sync(fake_ca::first_page()).await.unwrap_err();
    assert!(matches!(err, CaError::WrongCa { .. }), "{err}");
    assert!(err.is_transient(), "retried with backoff, fail closed");
    evil.wait_for_handshakes(2).await;
    let seen = evil.seen.lock().unwrap();
    assert_eq!(seen.handshakes_ok, 0, "{seen:?}");
    assert!(seen.received.is_empty(), "{seen:?}");
}

#[tokio::test]
async fn fips_is_refused_at_start_up() {
    let ca = ca();
    let server = FakeCaServer::start(ca.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    let err = AgentConfig::from_toml(&toml(tmp.path(), &server, "fips = true\n"))
        .and_then(|c| c.validate())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "fips = true needs tls_backend = \"openssl\" (rustls here uses ring, which is not a FIPS-validated module)"
        ),
        "{err}"
    );
    let err = AgentConfig::from_toml(&toml(
        tmp.path(),
        &server,
        "tls_backend = \"openssl\"\nfips = true\n",
    ))
    .and_then(|c| c.validate())
    .map_err(|e| e.to_string());
    if !meshid_identity::openssl::fips::available() {
        let err = err.unwrap_err();
        assert!(err.contains("has no \"fips\" provider"), "{err}");
        assert!(
            err.contains("install a FIPS-validated OpenSSL build"),
            "{err}"
        );
    }
    assert_eq!(server.calls(), 0, "nothing contacted");
}
