//! CA failover: the agent's real gRPC client against two replicas of one
//! in-memory CA (one shared state, as replicas share one store). A call
//! goes to the replica that worked last; on a transient failure (replica
//! down, killed in the middle of the call) it is retried on the next one,
//! each address at most once per call, then the caller's backoff applies.
#![allow(clippy::unwrap_used)]

#[path = "support/fake_ca.rs"]
mod fake_ca;
#[path = "support/fake_ca_server.rs"]
mod fake_ca_server;
#[path = "support/tls_peer.rs"]
mod tls_peer;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fake_ca::FakeCa;
use fake_ca_server::{CA_ID, FakeCaServer};
use meshid_agent::attest::{AttestConfig, Attestor};
use meshid_agent::config::JoinToken;
use meshid_agent::manager::{ManagerConfig, ManagerHandle, SvidManager};
use meshid_agent::metrics::AgentMetrics;
use meshid_agent::node_client::{CaClient, GrpcCaClient};
use meshid_identity::SpiffeId;
use meshid_runtime::clock::{SharedClock, SystemClock};

/// A CA on the wall clock (rustls checks validity at real time) with one
/// entry and a join token.
fn ca() -> Arc<FakeCa> {
    let clock: SharedClock = Arc::new(SystemClock);
    let ca = FakeCa::new(clock);
    ca.lock().tokens.insert("tok".into());
    ca.add_entry("e0", "/w/0", 1);
    ca.add_entry("e1", "/w/1", 2);
    ca
}

fn client(addresses: &[String]) -> Arc<GrpcCaClient> {
    Arc::new(GrpcCaClient::with_addresses(addresses, SpiffeId::parse(CA_ID).unwrap()).unwrap())
}

/// Attests through `client` and returns a manager on it.
async fn attested(
    ca: &Arc<FakeCa>,
    client: Arc<GrpcCaClient>,
    dir: &std::path::Path,
) -> (SvidManager, ManagerHandle) {
    let clock: SharedClock = Arc::new(SystemClock);
    Attestor::new(
        AttestConfig {
            trust_domain: ca.td.clone(),
            data_dir: dir.to_owned(),
            join_token: Some(JoinToken::new("tok")),
            k8s_psat: None,
            bootstrap_bundle: Some(ca.trust_bundle()),
            renew_fraction: 0.5,
        },
        client.clone(),
        clock.clone(),
    )
    .start()
    .await
    .unwrap();
    SvidManager::new(
        ManagerConfig::new(ca.td.clone()),
        client,
        clock,
        AgentMetrics::default(),
    )
}

#[tokio::test]
async fn a_down_replica_is_skipped_and_the_working_one_kept_until_it_fails() {
    let ca = ca();
    let a = FakeCaServer::start(ca.clone()).await;
    let b = FakeCaServer::start(ca.clone()).await;
    a.kill().await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(&[a.address(), b.address()]);

    // First down: attestation, sync and signing go to the second.
    let (mut m, handle) = attested(&ca, client.clone(), dir.path()).await;
    m.tick().await.unwrap();
    assert_eq!(handle.snapshot().svids.len(), 2);
    assert_eq!(a.calls(), 0);
    let on_b = b.calls();
    assert!(on_b >= 3, "attest, sync, sign on b: {on_b}");

    // The first comes back: calls stay on the second, which works.
    a.restart().await;
    ca.add_entry("e2", "/w/2", 3);
    m.tick().await.unwrap();
    assert_eq!(a.calls(), 0, "no rotation on success");
    assert!(b.calls() > on_b);

    // The second dies: the next call fails over to the first and stays.
    b.kill().await;
    ca.add_entry("e3", "/w/3", 4);
    m.tick().await.unwrap();
    assert_eq!(handle.snapshot().svids.len(), 4);
    let on_a = a.calls();
    assert!(on_a >= 2, "sync and sign on a: {on_a}");
    b.restart().await;
    let b_before = b.calls();
    m.tick().await.unwrap();
    assert_eq!(b.calls(), b_before, "the first works, so it is kept");
    assert!(a.calls() > on_a);
}

#[tokio::test]
async fn a_replica_killed_while_signing_is_replaced_by_the_next_within_the_call() {
    let ca = ca();
    let a = FakeCaServer::start(ca.clone()).await;
    let b = FakeCaServer::start(ca.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(&[a.address(), b.address()]);
    let (mut m, handle) = attested(&ca, client, dir.path()).await;
    assert_eq!(b.calls(), 0, "attested through the first");

    a.die_during_sign();
    let on_a = a.calls();
    m.tick().await.unwrap();
    assert_eq!(handle.snapshot().svids.len(), 2, "signed by the second");
    assert_eq!(a.calls(), on_a + 2, "sync, then the sign that killed it");
    assert_eq!(b.calls(), 1, "the same sign, retried once on the second");
    assert_eq!(
        ca.lock().batches,
        vec![2],
        "one batch signed, by the second"
    );
}

#[tokio::test]
async fn a_server_with_another_id_is_skipped_without_receiving_the_token() {
    let ca = ca();
    let (chain, key) = ca.issue("spiffe://example.org/ns/evil");
    let evil = tls_peer::TlsPeer::start(chain, &key).await;
    let real = FakeCaServer::start(ca.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(&[evil.address(), real.address()]);

    let (mut m, handle) = attested(&ca, client, dir.path()).await;
    m.tick().await.unwrap();
    assert_eq!(handle.snapshot().svids.len(), 2, "served by the real CA");
    evil.wait_for_handshakes(1).await;
    let seen = evil.seen.lock().unwrap();
    assert_eq!(seen.handshakes_ok, 0, "{seen:?}");
    assert!(seen.received.is_empty(), "no token, no CSR: {seen:?}");
    assert_eq!(seen.connections, 1, "tried once, then the real CA was kept");
}

/// A TCP port that accepts and closes at once, counting connections.
async fn counting_port() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(tcp);
        }
    });
    (addr, n)
}

#[tokio::test]
async fn with_every_replica_failing_each_address_is_tried_once_per_call() {
    let ca = ca();
    let (x, nx) = counting_port().await;
    let (y, ny) = counting_port().await;
    let client = client(&[x, y]);
    client.set_bundles(Arc::new(std::iter::once(ca.trust_bundle()).collect()));
    let (chain, key) = ca.issue("spiffe://example.org/meshid/agent/join_token/x");
    client.set_credentials(Some(meshid_agent::node_client::AgentCredentials {
        chain,
        key,
    }));

    for call in 1..=3 {
        let err = client.sync(fake_ca::first_page()).await.unwrap_err();
        assert!(err.is_transient(), "left to the backoff: {err}");
        assert_eq!(
            (nx.load(Ordering::SeqCst), ny.load(Ordering::SeqCst)),
            (call, call),
            "call {call}: one connection per address"
        );
    }
}
