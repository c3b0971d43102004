//! The agent talks only to the CA: a server at `ca_address` holding any
//! other SVID of the trust domain (here a workload's) gets no join token and
//! no CSR, on attestation and on every mTLS call, and the error names the
//! expected and presented IDs and what to set.
#![allow(clippy::unwrap_used)]

#[path = "support/fake_ca.rs"]
mod fake_ca;
#[path = "support/tls_peer.rs"]
mod tls_peer;

use std::sync::Arc;

use fake_ca::FakeCa;
use meshid_agent::attest::{AttestConfig, AttestError, Attestor};
use meshid_agent::config::JoinToken;
use meshid_agent::node_client::{AgentCredentials, CaClient, CaError, GrpcCaClient};
use meshid_identity::SpiffeId;
use meshid_runtime::clock::{SharedClock, SystemClock};
use tls_peer::TlsPeer;

const TOKEN: &str = "join-token-that-must-not-leak-4b1d";
const CA_ID: &str = "spiffe://example.org/meshid/ca";

/// A CA signing with the wall clock (rustls checks validity at real time).
fn ca() -> Arc<FakeCa> {
    let clock: SharedClock = Arc::new(SystemClock);
    FakeCa::new(clock)
}

/// A TLS server presenting an SVID for `id` from `ca`'s root.
async fn server_as(ca: &FakeCa, id: &str) -> TlsPeer {
    let (chain, key) = ca.issue(id);
    TlsPeer::start(chain, &key).await
}

/// Attests with [`TOKEN`] against `peer`, requiring the CA to be `ca_id`.
async fn attest(ca: &Arc<FakeCa>, peer: &TlsPeer, ca_id: &str) -> AttestError {
    let client =
        Arc::new(GrpcCaClient::new(&peer.address(), SpiffeId::parse(ca_id).unwrap()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let attestor = Attestor::new(
        AttestConfig {
            trust_domain: ca.td.clone(),
            data_dir: dir.path().to_owned(),
            join_token: Some(JoinToken::new(TOKEN)),
            k8s_psat: None,
            bootstrap_bundle: Some(ca.trust_bundle()),
            renew_fraction: 0.5,
        },
        client,
        Arc::new(SystemClock),
    );
    attestor.start().await.unwrap_err()
}

#[tokio::test]
async fn a_workload_svid_at_the_ca_address_receives_no_join_token() {
    let ca = ca();
    let evil = server_as(&ca, "spiffe://example.org/ns/evil").await;

    let err = attest(&ca, &evil, CA_ID).await;
    evil.wait_for_handshakes(1).await;

    let seen = evil.seen.lock().unwrap();
    assert_eq!(
        seen.handshakes_ok, 0,
        "the agent aborted the handshake: {seen:?}"
    );
    assert!(seen.received.is_empty(), "nothing was sent: {seen:?}");
    drop(seen);
    assert!(!evil.received_contains(TOKEN.as_bytes()));
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
    let msg = err.to_string();
    for part in [
        CA_ID,
        "spiffe://example.org/ns/evil",
        "ca_spiffe_id",
        "ca_address",
    ] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
}

#[tokio::test]
async fn the_ca_with_its_id_receives_the_join_token() {
    let ca = ca();
    let real = server_as(&ca, CA_ID).await;

    // The peer is no gRPC server, so attestation itself fails afterwards;
    // what matters is that the request went out over the pinned channel.
    let err = attest(&ca, &real, CA_ID).await;
    assert!(
        !matches!(err, AttestError::Ca(CaError::WrongCa { .. })),
        "{err}"
    );
    assert_eq!(real.seen.lock().unwrap().handshakes_ok, 1);
    assert!(
        real.received_contains(TOKEN.as_bytes()),
        "the Attest request reached the CA"
    );
}

#[tokio::test]
async fn a_custom_ca_id_is_required_when_configured() {
    let ca = ca();
    let custom = "spiffe://example.org/infra/ca-1";
    let peer = server_as(&ca, custom).await;

    attest(&ca, &peer, custom).await;
    assert!(
        peer.received_contains(TOKEN.as_bytes()),
        "custom ID accepted"
    );

    // The same server is refused under the default ID.
    let before = peer.seen.lock().unwrap().received.len();
    let err = attest(&ca, &peer, CA_ID).await;
    assert!(
        matches!(err, AttestError::Ca(CaError::WrongCa { .. })),
        "{err}"
    );
    assert_eq!(peer.seen.lock().unwrap().received.len(), before);
}

#[tokio::test]
async fn mtls_calls_after_attestation_are_pinned_too() {
    let ca = ca();
    let evil = server_as(&ca, "spiffe://example.org/ns/evil").await;
    let client = GrpcCaClient::new(&evil.address(), SpiffeId::parse(CA_ID).unwrap()).unwrap();
    let (chain, key) = ca.issue("spiffe://example.org/meshid/agent/join_token/x");
    client.set_bundles(Arc::new(std::iter::once(ca.trust_bundle()).collect()));
    client.set_credentials(Some(AgentCredentials { chain, key }));

    let err = client.sync(fake_ca::first_page()).await.unwrap_err();
    assert!(matches!(err, CaError::WrongCa { .. }), "{err}");
    assert!(err.is_transient(), "retried with backoff, fail closed");
    evil.wait_for_handshakes(1).await;
    let seen = evil.seen.lock().unwrap();
    assert_eq!(seen.handshakes_ok, 0, "{seen:?}");
    assert!(seen.received.is_empty(), "{seen:?}");
}
