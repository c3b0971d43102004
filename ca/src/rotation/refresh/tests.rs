//! The refresher against a real SQLite store written to as another replica
//! would: newer bundles and journal changes arrive, older bundles never
//! replace newer ones, store errors are survived.

use std::time::{Duration, SystemTime};

use meshid_runtime::clock::Clock;
use sqlx::Connection;
use tokio::task::JoinHandle;

use super::*;
use crate::rotation::ROTATION_LEASE;
use crate::rotation::lease::tests::{fixture, slot};

const EVERY: Duration = Duration::from_millis(50);
/// Bound on every wait for a change (many intervals).
const WAIT: Duration = Duration::from_secs(10);

fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

/// Writes the bundle of sequence `sequence` unconditionally, as another
/// replica would.
async fn put_bundle(store: &Arc<dyn Store>, sequence: i64, at: SystemTime) {
    let bundle = StoredBundle {
        trust_domain: td(),
        spiffe_json: format!("{{\"spiffe_sequence\":{sequence},\"keys\":[]}}").into_bytes(),
        sequence,
        updated_at: at,
    };
    store.put_bundle(&bundle, None).await.unwrap();
}

/// Writes `slot` under the lease, as another replica's step would.
async fn put_slot(store: &Arc<dyn Store>, slot: &KeySlot) {
    let lease = store
        .acquire_lease(ROTATION_LEASE, "ca-other", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    store.put_key_slot(slot, &lease).await.unwrap();
    store.release_lease(&lease).await.unwrap();
}

/// Starts the refresher over `store`; returns the receiver, the shutdown
/// switch and the task.
async fn start(
    store: &Arc<dyn Store>,
    every: Duration,
) -> (
    Refresher,
    watch::Receiver<SharedState>,
    watch::Sender<bool>,
    JoinHandle<()>,
) {
    let refresher = Refresher::new(Arc::clone(store), td(), every);
    let (tx, rx) = watch::channel(refresher.read().await.unwrap());
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(refresher.clone().run(tx, shutdown));
    (refresher, rx, stop, task)
}

/// The next state handed over (bounded wait).
async fn next(rx: &mut watch::Receiver<SharedState>) -> SharedState {
    tokio::time::timeout(WAIT, rx.changed())
        .await
        .expect("a change within the wait")
        .unwrap();
    rx.borrow_and_update().clone()
}

#[tokio::test]
async fn writes_of_another_replica_are_handed_over_and_the_newest_bundle_wins() {
    let f = fixture().await;
    let now = f.clock.now();
    let (_refresher, mut rx, stop, task) = start(&f.store, EVERY).await;
    assert_eq!(*rx.borrow(), SharedState::default());

    put_bundle(&f.store, 3, now).await;
    assert_eq!(next(&mut rx).await.sequence(), 3);

    let s = slot("ca-other", now);
    put_slot(&f.store, &s).await;
    let state = next(&mut rx).await;
    assert_eq!(state.slots, vec![s.clone()]);
    assert_eq!(state.sequence(), 3);

    // A bundle with a lower sequence is not served instead of the newer
    // one; the journal change that comes with it is.
    put_bundle(&f.store, 2, now).await;
    let mut activated = s.clone();
    activated.state = crate::store::SlotState::Active;
    activated.activated_at = Some(now);
    put_slot(&f.store, &activated).await;
    let state = next(&mut rx).await;
    assert_eq!(state.slots[0].state, crate::store::SlotState::Active);
    assert_eq!(state.sequence(), 3);

    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}

#[tokio::test]
async fn refresh_now_reads_without_waiting_for_the_tick() {
    let f = fixture().await;
    let (refresher, mut rx, _stop, _task) = start(&f.store, Duration::from_secs(3600)).await;
    put_bundle(&f.store, 1, f.clock.now()).await;
    refresher.refresh_now();
    assert_eq!(next(&mut rx).await.sequence(), 1);
}

#[tokio::test]
async fn store_errors_are_retried_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.db");
    let store: Arc<dyn Store> = Arc::new(
        crate::store::SqliteStore::open(&path, &crate::store::OpenOptions::default())
            .await
            .unwrap(),
    );
    let (_refresher, mut rx, _stop, task) = start(&store, EVERY).await;
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let rename = |from: &str, to: &str| format!("ALTER TABLE {from} RENAME TO {to}");

    // The journal cannot be read: nothing is handed over, the task lives.
    sqlx::raw_sql(sqlx::AssertSqlSafe(rename(
        "ca_key_slots",
        "ca_key_slots_away",
    )))
    .execute(&mut db)
    .await
    .unwrap();
    // Let a read that began before the rename finish first.
    tokio::time::sleep(EVERY * 4).await;
    put_bundle(&store, 5, SystemTime::now()).await;
    tokio::time::sleep(EVERY * 6).await;
    assert!(
        !rx.has_changed().unwrap(),
        "nothing read while the store fails"
    );
    assert!(!task.is_finished());

    // Readable again: the bundle written meanwhile arrives.
    sqlx::raw_sql(sqlx::AssertSqlSafe(rename(
        "ca_key_slots_away",
        "ca_key_slots",
    )))
    .execute(&mut db)
    .await
    .unwrap();
    assert_eq!(next(&mut rx).await.sequence(), 5);
}

#[tokio::test]
async fn the_task_ends_when_every_receiver_is_gone() {
    let f = fixture().await;
    let (_refresher, rx, _stop, task) = start(&f.store, EVERY).await;
    drop(rx);
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}

#[test]
fn merging_an_unchanged_read_changes_nothing() {
    let mut state = SharedState::default();
    assert!(!state.merge(SharedState::default()));
    let bundle = StoredBundle {
        trust_domain: td(),
        spiffe_json: b"{}".to_vec(),
        sequence: 7,
        updated_at: SystemTime::UNIX_EPOCH,
    };
    let read = SharedState {
        bundle: Some(bundle.clone()),
        slots: Vec::new(),
    };
    assert!(state.merge(read.clone()));
    assert!(!state.merge(read));
    let older = StoredBundle {
        sequence: 6,
        ..bundle
    };
    assert!(!state.merge(SharedState {
        bundle: Some(older),
        slots: Vec::new(),
    }));
    assert_eq!(state.sequence(), 7);
}
