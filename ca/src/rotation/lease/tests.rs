//! The rotation lease against a real SQLite store whose clock the tests
//! move by hand: busy, release, renewal of a long step, loss mid-step.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshid_runtime::clock::{Clock, ManualClock};
use prometheus_client::registry::Registry;

use super::*;
use crate::store::{
    KeyKind, KeySlot, MeteredStore, OpenOptions, SlotState, SqliteStore, StoreMetrics,
};

/// Short enough that renewals (every half of it, real time) come quickly.
const TTL: Duration = Duration::from_millis(200);

#[derive(Debug)]
enum TestError {
    Lease(LeaseError),
    Store(#[allow(dead_code, reason = "shown by Debug when a test fails")] StoreError),
    Step,
}

impl From<LeaseError> for TestError {
    fn from(e: LeaseError) -> Self {
        Self::Lease(e)
    }
}

impl From<StoreError> for TestError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A metered SQLite store in memory and the clock it stamps rows with.
pub(in crate::rotation) struct Fixture {
    pub store: Arc<dyn Store>,
    pub clock: ManualClock,
    registry: Registry,
}

pub(in crate::rotation) async fn fixture() -> Fixture {
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let opts = OpenOptions {
        clock: Arc::new(clock.clone()),
        ..OpenOptions::default()
    };
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory_with(&opts).await.unwrap());
    let mut registry = Registry::default();
    let metrics = StoreMetrics::register(&mut registry);
    Fixture {
        store: Arc::new(MeteredStore::new(sqlite, metrics)),
        clock,
        registry,
    }
}

impl Fixture {
    fn lease(&self, replica: &str) -> RotationLease {
        RotationLease::new(
            Arc::clone(&self.store),
            ReplicaId::parse(replica).unwrap(),
            TTL,
            Arc::new(self.clock.clone()),
        )
    }

    /// How many `acquire_lease` calls have completed (taking and renewing).
    fn acquire_calls(&self) -> u64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix("store_call_duration_seconds_count{op=\"acquire_lease\"} ")
            })
            .map_or(0, |n| n.trim().parse().unwrap())
    }
}

/// A prepared JWT slot of `replica`, generation 1, made at `now`.
pub(in crate::rotation) fn slot(replica: &str, now: SystemTime) -> KeySlot {
    KeySlot {
        id: KeySlot::slot_id(replica, KeyKind::Jwt, 1),
        replica: replica.into(),
        kind: KeyKind::Jwt,
        generation: 1,
        state: SlotState::Prepared,
        key_id: format!("kid-{replica}"),
        key_slot: "jwt".into(),
        key_ref: "/data/jwt.key.pem".into(),
        public_pem: "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n".into(),
        roots_pem: String::new(),
        not_before: now,
        not_after: now + Duration::from_secs(86400),
        prepared_at: now,
        activated_at: None,
        retired_at: None,
        publish_until: None,
        tainted: false,
        updated_at: now,
    }
}

#[tokio::test]
async fn a_step_runs_holding_the_lease_and_releases_it() {
    let f = fixture().await;
    let a = f.lease("ca-a");
    let store = Arc::clone(&f.store);
    let now = f.clock.now();
    let token = a
        .run("prepare", |lease| async move {
            assert_eq!(
                (lease.name.as_str(), lease.holder.as_str()),
                (ROTATION_LEASE, "ca-a")
            );
            store.put_key_slot(&slot("ca-a", now), &lease).await?;
            Ok::<_, TestError>(lease.token)
        })
        .await
        .unwrap();
    assert_eq!(f.store.list_key_slots().await.unwrap().len(), 1);
    // Released: another replica takes it at once, without waiting for expiry,
    // under a greater token.
    let b = f
        .store
        .acquire_lease(ROTATION_LEASE, "ca-b", TTL)
        .await
        .unwrap()
        .expect("released");
    assert!(b.token > token, "{} > {token}", b.token);
}

#[tokio::test]
async fn another_replica_holding_it_makes_the_step_busy_until_it_lapses() {
    let f = fixture().await;
    f.store
        .acquire_lease(ROTATION_LEASE, "ca-b", TTL)
        .await
        .unwrap()
        .unwrap();
    let a = f.lease("ca-a");
    let ran = AtomicBool::new(false);
    let e = a
        .run("activate", |_| async {
            ran.store(true, Ordering::SeqCst);
            Ok::<_, TestError>(())
        })
        .await
        .unwrap_err();
    let TestError::Lease(e @ LeaseError::Busy { .. }) = e else {
        panic!("{e:?}");
    };
    let until = humantime::format_rfc3339_seconds(f.clock.now() + TTL);
    assert!(
        e.to_string()
            .starts_with(&format!("busy, held by ca-b until {until}")),
        "{e}"
    );
    assert!(!ran.load(Ordering::SeqCst), "a busy step does not run");

    // Once B's lease has lapsed (B died), A takes it.
    f.clock.advance(TTL);
    a.run("activate", |_| async { Ok::<_, TestError>(()) })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failed_step_returns_its_error_and_releases_the_lease() {
    let f = fixture().await;
    let e = f
        .lease("ca-a")
        .run("taint", |_| async { Err::<(), _>(TestError::Step) })
        .await
        .unwrap_err();
    assert!(matches!(e, TestError::Step), "{e:?}");
    assert!(
        f.store
            .acquire_lease(ROTATION_LEASE, "ca-b", TTL)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_step_longer_than_half_the_ttl_renews_the_lease() {
    let f = fixture().await;
    let store = Arc::clone(&f.store);
    let clock = f.clock.clone();
    let fx = &f;
    let start = clock.now();
    f.lease("ca-a")
        .run("prepare", |lease| async move {
            let first_expiry = lease.expires_at;
            clock.advance(TTL * 3 / 4);
            // Wait (bounded) for the renewal the lease makes at half its ttl.
            let mut waited = 0;
            while fx.acquire_calls() < 2 {
                assert!(waited < 500, "the lease was never renewed");
                waited += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            clock.advance(TTL / 2);
            assert!(clock.now() > first_expiry, "past the lease's first expiry");
            // The write is fenced by the same token, still held.
            store.put_key_slot(&slot("ca-a", start), &lease).await?;
            Ok::<_, TestError>(())
        })
        .await
        .unwrap();
    assert_eq!(f.store.list_key_slots().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_lease_taken_over_mid_step_aborts_the_step() {
    let f = fixture().await;
    let store = Arc::clone(&f.store);
    let clock = f.clock.clone();
    let finished_flag = AtomicBool::new(false);
    let finished = &finished_flag;
    let e = f
        .lease("ca-a")
        .run("activate", |lease| async move {
            // A stalls past its lease (a long GC pause, a lost network) and
            // B takes the lapsed lease.
            clock.advance(TTL + Duration::from_millis(1));
            let b = store
                .acquire_lease(ROTATION_LEASE, "ca-b", TTL)
                .await
                .unwrap()
                .expect("lapsed, so B gets it");
            assert!(b.token > lease.token);
            // A's write under the old token is refused by the store...
            let refused = store.put_key_slot(&slot("ca-a", clock.now()), &lease).await;
            assert!(
                matches!(refused, Err(StoreError::LeaseLost { .. })),
                "{refused:?}"
            );
            // ...and A's renewal notices and aborts the rest of the step.
            std::future::pending::<()>().await;
            finished.store(true, Ordering::SeqCst);
            Ok::<_, TestError>(())
        })
        .await
        .unwrap_err();
    let TestError::Lease(e @ LeaseError::Lost { .. }) = e else {
        panic!("{e:?}");
    };
    let msg = e.to_string();
    assert!(msg.contains("ca-a") && msg.contains("activate"), "{msg}");
    assert!(!finished_flag.load(Ordering::SeqCst));
    assert!(f.store.list_key_slots().await.unwrap().is_empty());
}

#[tokio::test]
async fn steps_of_one_replica_wait_for_each_other() {
    let f = fixture().await;
    let a = f.lease("ca-a");
    let running = AtomicUsize::new(0);
    let most = AtomicUsize::new(0);
    let step = |_| async {
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        running.fetch_sub(1, Ordering::SeqCst);
        Ok::<_, TestError>(())
    };
    let other = a.clone();
    let (x, y) = tokio::join!(a.run("prepare", step), other.run("prepare", step));
    x.unwrap();
    y.unwrap();
    assert_eq!(most.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_lease_that_cannot_be_renewed_before_it_lapses_aborts_the_step() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.db");
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let opts = OpenOptions {
        clock: Arc::new(clock.clone()),
        ..OpenOptions::default()
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, &opts).await.unwrap());
    let lease = RotationLease::new(
        store,
        ReplicaId::parse("ca-a").unwrap(),
        TTL,
        Arc::new(clock.clone()),
    );
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let e = lease
        .run("prepare", |_| async {
            // The store stops answering for leases, and the lease lapses.
            sqlx::raw_sql("ALTER TABLE ca_leases RENAME TO ca_leases_away")
                .execute(&mut db)
                .await
                .unwrap();
            clock.advance(TTL);
            std::future::pending::<Result<(), TestError>>().await
        })
        .await
        .unwrap_err();
    let TestError::Lease(e @ LeaseError::Lost { .. }) = e else {
        panic!("{e:?}");
    };
    assert!(e.to_string().contains("while renewal failed"), "{e}");
}
