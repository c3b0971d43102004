//! Two CA replicas in process on one PostgreSQL database, as an operator
//! runs them: each with its own data directory, so its own signing CA and
//! JWT key, both in the one trust bundle; agents attested through one are
//! served by the other; a rotation step taken by one is served by the other
//! within `[ha] refresh_interval`; racing replicas take a step once. And
//! the replica ID a replica generates and keeps (no database needed).
//!
//! PostgreSQL comes from `MESHID_TEST_POSTGRES_URL` (see
//! `meshid_tests::postgres`).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use meshid_ca::config::{CaConfig, HaConfig};
use meshid_ca::rotation::{LeaseError, ReplicaId, RotationLease};
use meshid_ca::server::CaServer;
use meshid_ca::store::{self, KeyKind, KeySlot, NewEntry, SlotState, Store, StoreError};
use meshid_identity::{PrivateKey, Selector, TrustBundle, TrustDomain};
use meshid_proto::ca as pb;
use meshid_proto::ca::admin_client::AdminClient;
use meshid_tests::node::csr;
use meshid_tests::postgres::Database;
use meshid_tests::{eventually_async, node_client};
use rustls::pki_types::CertificateDer;
use tonic::transport::Channel;

#[path = "support/server.rs"]
mod server;

use server::TD;

/// How often each replica re-reads the shared store here.
const REFRESH: Duration = Duration::from_millis(200);
/// Bound on waiting for a replica to see what the other wrote: many
/// refresh intervals, so a loaded machine does not fail the test.
const CONVERGE: Duration = Duration::from_secs(20);

fn td() -> TrustDomain {
    TD.parse().unwrap()
}

/// Two replicas, `ca-a` and `ca-b`, on one fresh database.
struct Pair {
    a: Replica,
    b: Replica,
    db: Database,
}

struct Replica {
    server: CaServer,
    dir: tempfile::TempDir,
    id: &'static str,
}

fn replica_config(dir: &Path, db: &Database, id: &str) -> CaConfig {
    CaConfig {
        store: Some(db.url.parse().unwrap()),
        ha: HaConfig {
            replica_id: Some(ReplicaId::parse(id).unwrap()),
            refresh_interval: REFRESH,
            ..HaConfig::default()
        },
        ..server::config(dir)
    }
}

/// Starts both replicas at the same time (they race for the first
/// bundle); `None` without a PostgreSQL server outside CI.
async fn pair(test: &str) -> Option<Pair> {
    let db = Database::fresh(test)?;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = tokio::join!(
        server::start(replica_config(dir_a.path(), &db, "ca-a")),
        server::start(replica_config(dir_b.path(), &db, "ca-b")),
    );
    Some(Pair {
        a: Replica {
            server: a,
            dir: dir_a,
            id: "ca-a",
        },
        b: Replica {
            server: b,
            dir: dir_b,
            id: "ca-b",
        },
        db,
    })
}

impl Pair {
    async fn stop(self) {
        self.a.server.shutdown().await.unwrap();
        self.b.server.shutdown().await.unwrap();
        drop(self.db);
    }

    /// The stored bundle of the trust domain.
    async fn stored(&self) -> TrustBundle {
        let stored = self
            .a
            .server
            .store
            .get_bundle(&td())
            .await
            .unwrap()
            .unwrap();
        TrustBundle::from_spiffe_json(td(), &stored.spiffe_json).unwrap()
    }

    /// Waits until the stored bundle holds every published slot of the
    /// journal and both replicas serve exactly it; returns it.
    async fn converged(&self) -> TrustBundle {
        eventually_async(
            "both replicas serve the one stored bundle",
            CONVERGE,
            || async {
                let stored = self.stored().await;
                let slots = self.a.server.store.list_key_slots().await.unwrap();
                let complete = [self.a.id, self.b.id].iter().all(|replica| {
                    slots
                        .iter()
                        .filter(|s| s.replica == *replica)
                        .all(|s| in_bundle(&stored, s))
                });
                let served = [&self.a, &self.b]
                    .iter()
                    .all(|r| *r.server.authority.bundle().as_ref() == stored);
                (complete && served).then_some(stored)
            },
        )
        .await
    }
}

/// Whether `slot`'s key (its roots, or its JWT key) is in `bundle`.
fn in_bundle(bundle: &TrustBundle, slot: &KeySlot) -> bool {
    match slot.kind {
        KeyKind::Jwt => bundle.jwt_authority(&slot.key_id).is_some(),
        _ => {
            let roots = meshid_identity::x509::pem_certs(&slot.roots_pem).unwrap();
            !roots.is_empty() && roots.iter().all(|r| bundle.x509_authorities.contains(r))
        }
    }
}

impl Replica {
    /// This replica's own self-signed root (generation 1).
    fn root(&self) -> CertificateDer<'static> {
        let pem = std::fs::read_to_string(self.dir.path().join("ca.crt.pem")).unwrap();
        meshid_identity::x509::pem_certs(&pem).unwrap().remove(0)
    }

    async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(
            meshid_runtime::uds::channel(self.server.admin_socket.clone())
                .await
                .unwrap(),
        )
    }

    /// Its own slots of `kind` in `state`.
    async fn own(&self, kind: KeyKind, state: SlotState) -> Vec<KeySlot> {
        let slots = self.server.store.list_key_slots().await.unwrap();
        slots
            .into_iter()
            .filter(|s| s.replica == self.id && s.kind == kind && s.state == state)
            .collect()
    }
}

#[tokio::test]
async fn both_replicas_roots_and_jwt_keys_are_in_the_one_stored_bundle() {
    let Some(p) = pair("ha_replicas::both_replicas_keys").await else {
        return;
    };
    let bundle = p.converged().await;
    for r in [&p.a, &p.b] {
        assert!(
            bundle.x509_authorities.contains(&r.root()),
            "{}'s root is in the bundle",
            r.id
        );
        let jwt = r.own(KeyKind::Jwt, SlotState::Active).await;
        assert_eq!(jwt.len(), 1, "{} has one active JWT key", r.id);
        assert!(
            bundle.jwt_authority(&jwt[0].key_id).is_some(),
            "{}'s JWT key",
            r.id
        );
        assert_eq!(r.own(KeyKind::X509, SlotState::Active).await.len(), 1);
    }
    assert_ne!(p.a.root(), p.b.root(), "each replica has its own CA");
    p.stop().await;
}

/// The entry `spiffe://example.org/web` served by `agent`.
fn web(agent: &server::Agent) -> NewEntry {
    NewEntry::new(
        format!("spiffe://{TD}/web").parse().unwrap(),
        agent.id.clone(),
        vec![Selector::parse("unix:uid:1000").unwrap()],
    )
}

#[tokio::test]
async fn an_agent_attested_through_one_replica_is_served_by_the_other() {
    let Some(p) = pair("ha_replicas::agent_served_by_the_other").await else {
        return;
    };
    let bundle = p.converged().await;
    let agent = server::attest(&p.a.server, &bundle).await;
    let entry = p.a.server.store.create_entry(web(&agent)).await.unwrap().id;

    // B verifies the agent's SVID (signed by A's CA) against the shared
    // bundle, finds the agent and its entry in the shared store, signs.
    let mut b = node_client(p.b.server.node_addr, &bundle, Some(agent.svid())).await;
    let sync = b
        .sync(pb::SyncRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sync.entries.len(), 1);
    let signed = b
        .sign_x509_svids(pb::SignX509SvidsRequest {
            requests: vec![pb::SvidRequest {
                entry_id: entry,
                csr: csr(&PrivateKey::generate_p256().unwrap()),
                ttl_seconds: 0,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::svid_result::Result::Svid(svid)) = &signed.results[0].result else {
        panic!("{signed:?}");
    };
    let chain: Vec<CertificateDer<'_>> = svid
        .cert_chain
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let bundles = [bundle.clone()].into_iter().collect();
    let verified = meshid_identity::verify_x509_svid(&chain, &bundles, SystemTime::now()).unwrap();
    assert_eq!(verified.spiffe_id.to_string(), format!("spiffe://{TD}/web"));
    p.stop().await;
}

#[tokio::test]
async fn a_rotation_step_by_one_replica_is_served_by_the_other() {
    let Some(p) = pair("ha_replicas::step_seen_by_the_other").await else {
        return;
    };
    let before = p.converged().await;
    let prepared =
        p.a.admin()
            .await
            .prepare_key(pb::PrepareKeyRequest {
                kind: pb::KeyKind::X509.into(),
            })
            .await
            .unwrap()
            .into_inner();
    assert_eq!(prepared.replica, "ca-a");
    let slot =
        p.a.own(KeyKind::X509, SlotState::Prepared)
            .await
            .pop()
            .expect("the prepared slot is in the journal");
    assert_eq!(slot.key_id, prepared.key_id);
    let since = std::time::Instant::now();
    let served = eventually_async("B serves A's prepared root", CONVERGE, || async {
        let bundle = p.b.server.authority.bundle();
        in_bundle(&bundle, &slot).then_some(bundle)
    })
    .await;
    println!(
        "B served A's prepared root {:?} after A answered (refresh_interval {REFRESH:?})",
        since.elapsed()
    );
    assert!(served.sequence > before.sequence, "the sequence grew");
    p.stop().await;
}

#[tokio::test]
async fn replicas_preparing_at_once_lose_neither_key() {
    let Some(p) = pair("ha_replicas::preparing_at_once").await else {
        return;
    };
    p.converged().await;
    let (mut a, mut b) = (p.a.admin().await, p.b.admin().await);
    let req = || pb::PrepareKeyRequest {
        kind: pb::KeyKind::Jwt.into(),
    };
    // Each replica prepares its own next JWT key; the lease makes one
    // wait or answer busy, and a busy one is asked again.
    let (x, y) = tokio::join!(a.prepare_key(req()), b.prepare_key(req()));
    for (r, client, outcome) in [(&p.a, &mut a, x), (&p.b, &mut b, y)] {
        if let Err(e) = outcome {
            assert!(e.message().contains("busy"), "{}: {e}", r.id);
            eventually_async("the busy replica prepares", CONVERGE, || {
                let mut client = client.clone();
                async move { client.prepare_key(req()).await.ok() }
            })
            .await;
        }
    }
    let bundle = p.converged().await;
    for r in [&p.a, &p.b] {
        let prepared = r.own(KeyKind::Jwt, SlotState::Prepared).await;
        assert_eq!(prepared.len(), 1, "{}", r.id);
        assert!(in_bundle(&bundle, &prepared[0]), "{}'s prepared key", r.id);
    }
    p.stop().await;
}

#[tokio::test]
async fn entries_and_federated_bundles_written_through_one_replica_reach_the_other() {
    let Some(p) = pair("ha_replicas::caches_converge").await else {
        return;
    };
    let bundle = p.converged().await;
    let agent = server::attest(&p.b.server, &bundle).await;
    let mut b = node_client(p.b.server.node_addr, &bundle, Some(agent.svid())).await;

    // An entry written through A is in B's very next Sync (entries are
    // never cached).
    let mut e = web(&agent);
    e.federates_with = vec![TrustDomain::new("partner.org").unwrap()];
    p.a.server.store.create_entry(e).await.unwrap();
    let sync = b
        .sync(pb::SyncRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sync.entries.len(), 1);
    assert!(sync.federated_bundles.is_empty(), "no partner bundle yet");

    // A federated bundle set through A's admin API reaches B's Sync within
    // its cache's bound (FederatedBundles::MAX_AGE).
    let partner = TrustDomain::new("partner.org").unwrap();
    let mut theirs = TrustBundle::new(partner);
    theirs.x509_authorities.push(p.a.root());
    p.a.admin()
        .await
        .set_federated_bundle(pb::SetFederatedBundleRequest {
            trust_domain: "partner.org".into(),
            spiffe_json: theirs.to_spiffe_json().into_bytes(),
        })
        .await
        .unwrap();
    let bound = meshid_ca::node::FederatedBundles::MAX_AGE + CONVERGE;
    eventually_async("B's Sync carries partner.org", bound, || {
        let mut b = b.clone();
        async move {
            let sync = b
                .sync(pb::SyncRequest::default())
                .await
                .unwrap()
                .into_inner();
            (sync.federated_bundles.len() == 1).then_some(())
        }
    })
    .await;
    p.stop().await;
}

#[derive(Debug)]
enum RaceError {
    Lease(LeaseError),
    Store(#[allow(dead_code, reason = "shown by Debug when the test fails")] StoreError),
}

impl From<LeaseError> for RaceError {
    fn from(e: LeaseError) -> Self {
        Self::Lease(e)
    }
}

/// The step both replicas race for: re-read the journal under the lease
/// and write round `round`'s slot unless it is there already.
async fn race_step(
    store: Arc<dyn Store>,
    round: u32,
    lease: store::Lease,
    done: &AtomicUsize,
) -> Result<(), RaceError> {
    let id = KeySlot::slot_id("shared", KeyKind::X509, round);
    let slots = store.list_key_slots().await.map_err(RaceError::Store)?;
    if slots.iter().any(|s| s.id == id) {
        return Ok(());
    }
    // Widen the window in which the other replica could interleave.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let now = SystemTime::now();
    let slot = KeySlot {
        id,
        replica: "shared".into(),
        kind: KeyKind::X509,
        generation: round,
        state: SlotState::Prepared,
        key_id: format!("{round:040x}"),
        key_slot: format!("x509-ca-{round}"),
        key_ref: "memory".into(),
        public_pem: String::new(),
        roots_pem: String::new(),
        not_before: now,
        not_after: now + Duration::from_secs(3600),
        prepared_at: now,
        activated_at: None,
        retired_at: None,
        publish_until: None,
        tainted: false,
        updated_at: now,
    };
    store
        .put_key_slot(&slot, &lease)
        .await
        .map_err(RaceError::Store)?;
    done.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// The `rotation` lease on PostgreSQL, taken by two replicas (two pools)
/// at the same moment, round after round: the step of each round is done
/// exactly once, by whichever replica got the lease first.
#[tokio::test]
async fn replicas_racing_the_same_step_take_it_exactly_once() {
    let Some(db) = Database::fresh("ha_replicas::racing_the_same_step") else {
        return;
    };
    let (store_a, store_b) = (
        store::open(&db.url.parse().unwrap()).await.unwrap(),
        store::open(&db.url.parse().unwrap()).await.unwrap(),
    );
    let lease = |store: &Arc<dyn Store>, id: &str| {
        RotationLease::new(
            Arc::clone(store),
            ReplicaId::parse(id).unwrap(),
            Duration::from_secs(10),
            meshid_runtime::clock::system(),
        )
    };
    let (a, b) = (lease(&store_a, "ca-a"), lease(&store_b, "ca-b"));
    let done = AtomicUsize::new(0);
    let mut busy = 0;
    for round in 1..=20u32 {
        let (x, y) = tokio::join!(
            a.run("prepare", |l| race_step(
                Arc::clone(&store_a),
                round,
                l,
                &done
            )),
            b.run("prepare", |l| race_step(
                Arc::clone(&store_b),
                round,
                l,
                &done
            )),
        );
        for outcome in [x, y] {
            match outcome {
                Ok(()) => {}
                Err(RaceError::Lease(LeaseError::Busy { .. })) => busy += 1,
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        assert_eq!(done.load(Ordering::SeqCst), round as usize, "round {round}");
    }
    println!("20 rounds, {busy} answered busy");
    assert_eq!(store_a.list_key_slots().await.unwrap().len(), 20);
    drop((a, b, store_a, store_b, db));
}

/// Without `[ha] replica_id` a replica names its slots with the ID it
/// generated on first start and keeps it across restarts; a replica-id
/// file that holds no valid ID stops start-up, naming the file.
#[tokio::test]
async fn a_replica_keeps_its_generated_id_and_a_corrupt_id_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let ca = server::start(server::config(dir.path())).await;
    let path = dir.path().join(meshid_ca::rotation::REPLICA_ID_FILE);
    let id = std::fs::read_to_string(&path).unwrap();
    let id = ReplicaId::parse(id.trim_end()).unwrap();
    let replicas = |slots: Vec<KeySlot>| {
        let mut r: Vec<String> = slots.into_iter().map(|s| s.replica).collect();
        r.dedup();
        r
    };
    let first = replicas(ca.store.list_key_slots().await.unwrap());
    assert_eq!(first, vec![id.to_string()]);
    ca.shutdown().await.unwrap();

    let again = server::start(server::config(dir.path())).await;
    assert_eq!(
        replicas(again.store.list_key_slots().await.unwrap()),
        first,
        "the restarted replica adopted its own slots"
    );
    again.shutdown().await.unwrap();

    std::fs::write(&path, "Not An ID\n").unwrap();
    let valid = server::config(dir.path()).validate().unwrap();
    let e = CaServer::start(valid).await.unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(e.contains("[ha] replica_id"), "{e}");
}
