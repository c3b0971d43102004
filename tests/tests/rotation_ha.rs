//! Scenario (5) of live CA rotation and HA: two `meshid ca serve` replicas
//! (each its own root and JWT key, one trust bundle) share one PostgreSQL
//! database; the agent knows both (`ca_addresses`) and calls the first.
//! While continuous load runs over meshid proxy → meshid proxy and Envoy
//! (SDS from the agent) → meshid proxy, the replica the agent uses is
//! SIGKILLed while it signs a batch of new entries' SVIDs; signing goes on
//! at the other one. The killed replica is started again, then the other
//! is SIGKILLed during signing too. No request fails, nothing but the
//! killed CAs restarts, every entry gets its SVID, and every SVID the agent
//! serves has exactly one issuance record in PostgreSQL.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use meshid_tests::certs::{authority_key_id, serial};
use meshid_tests::load::Load;
use meshid_tests::postgres::Database;
use meshid_tests::{Mesh, TestAgent, TestCa, Traffic, current_uid, eventually_every, tempdir};

/// Entries served to this process at the start, and added before each kill
/// (so a batch of signatures is in flight when the replica dies).
const ENTRIES: usize = 10;
const BATCH: usize = 60;
/// Bounds: the CA's refresh, the agent's failover and re-signing.
const CONVERGED: Duration = Duration::from_secs(60);
const ALL_SIGNED: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(500);

fn replica_config(db: &Database, id: &str) -> String {
    format!(
        "store = {:?}\ndefault_x509_ttl = \"2m\"\nmax_x509_ttl = \"2m\"\nagent_ttl = \"2m\"\n\
         [ha]\nreplica_id = {id:?}\nrefresh_interval = \"1s\"\n",
        db.url
    )
}

/// Registers `n` more entries for this process's uid under `parent`,
/// numbered from `from`.
fn add_entries(ca: &TestCa, parent: &str, from: usize, n: usize) {
    let selector = format!("unix:uid:{}", current_uid());
    for i in from..from + n {
        let id = format!("spiffe://{}/ha/{i}", ca.trust_domain());
        ca.create_entry(&id, parent, &[&selector]);
    }
}

/// Registers `BATCH` entries through `via`, numbered from `from`, and
/// meanwhile, as soon as `signer` has signed one of them, kills `signer`
/// with SIGKILL: the agent has the rest of the batch to sign (the second
/// half is registered only after the kill). Returns how many entries were
/// still to be registered at the kill.
fn kill_while_signing(signer: &mut TestCa, via: &TestCa, parent: &str, from: usize) -> usize {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let before = signer.signatures();
    let added = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    std::thread::scope(|s| {
        // The first half arrives while `signer` is up (it may sign some or
        // all of it before the kill); the second half only once it is dead,
        // so the other replica always has SVIDs to sign, however fast or
        // slow this machine is.
        s.spawn(|| {
            for i in from..from + BATCH {
                if i == from + BATCH / 2 {
                    while !killed.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                add_entries(via, parent, i, 1);
                added.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Lets the adder go on even if the wait below panics (the scope
        // would otherwise wait for it forever).
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let release = Release(&killed);
        eventually_every(
            "the replica signing the new batch",
            CONVERGED,
            Duration::from_millis(20),
            || (signer.signatures() > before).then_some(()),
        );
        signer.child.kill();
        let left = BATCH - added.load(Ordering::Relaxed);
        drop(release);
        left
    })
}

#[test]
fn two_replicas_on_postgres_survive_sigkill_of_either_during_signing_without_a_failed_request() {
    let Some(db) = Database::fresh("rotation scenario (5), two CA replicas on PostgreSQL") else {
        return;
    };
    let tmp = tempdir();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let a = TestCa::builder(tmp.path().join("ca-a"), &logs)
        .config(&replica_config(&db, "ca-a"))
        .start();
    let mut b = TestCa::builder(tmp.path().join("ca-b"), &logs)
        .config(&replica_config(&db, "ca-b"))
        .start();
    for ca in [&a, &b] {
        eventually_every(
            "both replicas' roots in the bundle each serves",
            CONVERGED,
            POLL,
            || (ca.bundle_certs().len() == 2).then_some(()),
        );
    }

    // The agent pins both roots and knows both replicas; A comes first.
    let token = a.join_token();
    add_entries(&a, &token.agent_id, 0, ENTRIES);
    let first = format!("spiffe://{}/ha/0", a.trust_domain());
    let mut agent = TestAgent::builder(&a, tmp.path())
        .join_token(&token.secret)
        .ca_addresses(&[a.node_addr(), b.node_addr()])
        .start(&logs);
    agent.wait_for_svid(Some(&first));
    let scratch = tmp.path().join("served");
    let mut mesh = Mesh {
        tmp,
        logs,
        ca: a,
        agent,
        agent_id: token.agent_id.clone(),
        spiffe_id: first,
    };
    let mut traffic = Traffic::start(&mesh, "rotation scenario (5), Envoy part");
    let load = Load::start(traffic.targets());
    load.wait_for_more(200, CONVERGED);
    let started = Instant::now();

    // SIGKILL A while it signs a batch: the agent goes on with B.
    let left = kill_while_signing(&mut mesh.ca, &b, &token.agent_id, ENTRIES);
    let b_before = b.signatures();
    eprintln!(
        "replica A killed during signing after {:?}, {left} entries still to come",
        started.elapsed()
    );
    let wanted = ENTRIES + BATCH;
    eventually_every("every SVID served with A down", ALL_SIGNED, POLL, || {
        (mesh.agent.served_leaves(&scratch).len() == wanted).then_some(())
    });
    eprintln!("all {wanted} SVIDs served after {:?}", started.elapsed());
    assert!(
        b.signatures() > b_before,
        "B signed nothing after A died: A had finished the batch"
    );

    // A again; then SIGKILL B while it signs: the agent goes back to A.
    mesh.ca = mesh.ca.start_again();
    load.wait_for_more(200, CONVERGED);
    let left = kill_while_signing(&mut b, &mesh.ca, &token.agent_id, wanted);
    let a_before = mesh.ca.signatures();
    eprintln!(
        "replica B killed during signing after {:?}, {left} entries still to come",
        started.elapsed()
    );
    let wanted = wanted + BATCH;
    eventually_every("every SVID served with B down", ALL_SIGNED, POLL, || {
        (mesh.agent.served_leaves(&scratch).len() == wanted).then_some(())
    });
    eprintln!("all {wanted} SVIDs served after {:?}", started.elapsed());
    assert!(
        mesh.ca.signatures() > a_before,
        "A signed nothing after B died: B had finished the batch"
    );
    load.wait_for_more(400, CONVERGED);
    traffic.finish(load, 50, &mut mesh.agent);
    let keys = mesh.ca.key_ids("x509", "active");
    assert_eq!(keys.len(), 2, "both replicas' keys are active: {keys:?}");
    let leaves = mesh.agent.served_leaves(&scratch);
    assert_eq!(leaves.len(), wanted);
    let served = traffic.served_leaves().into_iter().map(|(_, l)| l);
    for leaf in leaves.into_iter().chain(served) {
        let aki = authority_key_id(&leaf, &scratch).unwrap();
        assert!(keys.contains(&aki), "an SVID of an unknown key {aki}");
        assert_eq!(
            db.issuance_records(&serial(&leaf)),
            vec![aki],
            "a served SVID has exactly one issuance record, naming its key"
        );
    }
}
