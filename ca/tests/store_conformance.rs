//! One conformance suite for every `Store` backend: each test below runs
//! against SQLite (a temp file) and PostgreSQL (a fresh database per test).
//!
//! PostgreSQL comes from `MESHID_TEST_POSTGRES_URL` (a role that may
//! `CREATE DATABASE`); `scripts/postgres-test-server start` prints one.
//! Without it the PostgreSQL half fails when `CI` is set, and otherwise
//! prints a loud note and passes.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshid_ca::store::{
    self, Agent, EntryFilter, EntryUpdate, IssuanceRecord, JoinToken, MAX_GET_ENTRIES, NewEntry,
    OpenOptions, Page, Store, StoreError, StoreUrl, StoredBundle,
};
use meshid_identity::{Selector, SpiffeId, TrustDomain};
use meshid_runtime::clock::ManualClock;
use sha2::{Digest, Sha256};
use sqlx::Connection;

#[path = "store_conformance/audit_log.rs"]
mod audit_log;
use audit_log::{
    audit_records_are_filtered_and_paged, audited_writes_leave_change_and_record_or_neither,
    checkpoints_are_stored_once_per_seq, concurrent_appends_form_one_gapless_chain,
    issuances_are_not_recorded_when_turned_off, issuances_are_recorded_in_their_batch,
    records_on_their_own_chain_and_are_bounded,
};
#[path = "store_conformance/tenancy.rs"]
mod tenancy;
use tenancy::{
    a_tenant_in_use_is_not_deleted, bindings_are_bound_listed_and_unbound,
    deleting_a_tenant_races_no_orphan_in, tenants_are_created_listed_bounded_and_deleted,
};
#[path = "store_conformance/attestation_tokens.rs"]
mod attestation_tokens;
use attestation_tokens::{
    attestation_tokens_are_recorded_once_until_they_expire, bad_attestation_tokens_are_refused,
    racing_attestations_with_one_token_have_one_winner,
};
#[path = "store_conformance/entry_owner.rs"]
mod entry_owner;
use entry_owner::{
    bad_owners_are_refused_and_do_not_make_entries_distinct,
    owners_are_stored_changed_and_filtered_on,
};
#[path = "store_conformance/key_journal.rs"]
mod key_journal;
use key_journal::{
    key_slot_writes_are_fenced_by_the_lease, key_slots_round_trip_in_id_order,
    leases_renew_release_and_count_hand_overs, live_issuances_are_counted_per_key,
    no_write_lands_after_the_lease_changed_hands, racing_acquirers_never_both_hold_the_lease,
};

// === harness ===

/// A store under test plus what must be cleaned up after it.
struct Db {
    store: Arc<dyn Store>,
    /// The clock the store stamps rows with.
    clock: ManualClock,
    _dir: Option<tempfile::TempDir>,
    pg_drop: Option<(String, String)>,
}

/// Opens `url` with a manual clock that starts at the real time.
async fn open_manual(url: &str, audit_issuances: bool) -> (Arc<dyn Store>, ManualClock) {
    let clock = ManualClock::new(SystemTime::now());
    let opts = OpenOptions {
        clock: Arc::new(clock.clone()),
        audit_issuances,
        ..OpenOptions::default()
    };
    (
        store::open_with(&url.parse().unwrap(), &opts)
            .await
            .unwrap(),
        clock,
    )
}

/// Opens `url` with default options.
async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    store::open(&StoreUrl::parse(url)?).await
}

impl Db {
    async fn sqlite() -> Db {
        Self::sqlite_with(true).await
    }

    /// A temp-file SQLite store; `audit_issuances` as in [`OpenOptions`].
    async fn sqlite_with(audit_issuances: bool) -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ca.db").display());
        let (store, clock) = open_manual(&url, audit_issuances).await;
        Db {
            store,
            clock,
            _dir: Some(dir),
            pg_drop: None,
        }
    }

    /// A fresh database on the test server, or `None` when there is no
    /// server and we are not in CI.
    async fn postgres() -> Option<Db> {
        Self::postgres_with(true).await
    }

    /// [`Db::postgres`] with `audit_issuances` as in [`OpenOptions`].
    async fn postgres_with(audit_issuances: bool) -> Option<Db> {
        let Ok(admin_url) = std::env::var("MESHID_TEST_POSTGRES_URL") else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "MESHID_TEST_POSTGRES_URL is not set, so the PostgreSQL store tests cannot \
                     run; start one with `scripts/postgres-test-server start` and export the \
                     URL it prints"
                );
            }
            eprintln!(
                "\n!!!!!!!!!! NOTE: PostgreSQL store tests NOT run: set MESHID_TEST_POSTGRES_URL \
                 (scripts/postgres-test-server start) !!!!!!!!!!\n"
            );
            return None;
        };
        let name = format!("t_{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = with_database(&admin_url, &name);
        let (store, clock) = open_manual(&url, audit_issuances).await;
        Some(Db {
            store,
            clock,
            _dir: None,
            pg_drop: Some((admin_url, name)),
        })
    }

    async fn cleanup(self) {
        drop(self.store);
        if let Some((admin_url, name)) = self.pg_drop {
            // An autovacuum worker in the database (it belongs to no role
            // the test's may signal) makes the drop fail until it is done.
            let what = format!("dropping test database {name}");
            meshid_tests::eventually_async(&what, Duration::from_secs(30), || {
                let (admin_url, what) = (admin_url.clone(), what.clone());
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                async move {
                    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
                    match sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                        .execute(&mut admin)
                        .await
                    {
                        Ok(_) => Some(()),
                        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {
                            None
                        }
                        Err(e) => panic!("{what}: {e}"),
                    }
                }
            })
            .await;
        }
    }
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    format!("{scheme}://{authority}/{db}{query}")
}

/// Runs one test body, then drops its database even if the body panicked.
async fn run<F, Fut>(db: Db, test: F)
where
    F: FnOnce(Arc<dyn Store>, ManualClock) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(test(db.store.clone(), db.clock.clone())).await;
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Runs each named test against both backends; the `clocked` ones also get
/// the store's clock to move.
macro_rules! conformance {
    ($($name:ident),* $(,)?; clocked: $($clocked:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run(super::Db::sqlite().await, |s, _| super::$name(s)).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $clocked() {
                    super::run(super::Db::sqlite().await, super::$clocked).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::Db::postgres().await else { return };
                    super::run(db, |s, _| super::$name(s)).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $clocked() {
                    let Some(db) = super::Db::postgres().await else { return };
                    super::run(db, super::$clocked).await;
                }
            )*
        }
    };
}

conformance!(
    entry_crud_and_revision_conflict,
    get_entries_returns_found_entries_once_each,
    concurrent_updates_of_one_revision_have_one_winner,
    duplicate_entry_is_rejected,
    paging_visits_every_entry_once,
    listing_while_entries_are_deleted_never_reads_half_an_entry,
    sync_query_returns_entries_of_all_given_parents,
    selector_filter_finds_entries_carrying_it,
    invalid_entries_are_refused,
    owners_are_stored_changed_and_filtered_on,
    bad_owners_are_refused_and_do_not_make_entries_distinct,
    join_token_is_consumed_once,
    concurrent_token_consumers_have_one_winner,
    issuance_batch_is_all_or_nothing,
    bundle_updates_check_the_sequence,
    audited_writes_leave_change_and_record_or_neither,
    records_on_their_own_chain_and_are_bounded,
    concurrent_appends_form_one_gapless_chain,
    issuances_are_recorded_in_their_batch,
    deleting_a_tenant_races_no_orphan_in,
    agents_can_be_banned_renewed_and_evicted,
    renewal_keeps_only_the_serial_renewed_from,
    concurrent_renewals_leave_one_current_serial,
    health_answers;
    clocked: row_stamps_follow_the_store_clock,
    key_slots_round_trip_in_id_order,
    key_slot_writes_are_fenced_by_the_lease,
    leases_renew_release_and_count_hand_overs,
    racing_acquirers_never_both_hold_the_lease,
    live_issuances_are_counted_per_key,
    no_write_lands_after_the_lease_changed_hands,
    attestation_tokens_are_recorded_once_until_they_expire,
    bad_attestation_tokens_are_refused,
    racing_attestations_with_one_token_have_one_winner,
    tenants_are_created_listed_bounded_and_deleted,
    a_tenant_in_use_is_not_deleted,
    bindings_are_bound_listed_and_unbound,
    audit_records_are_filtered_and_paged,
    checkpoints_are_stored_once_per_seq,
);

/// `[audit] issuances = false`: the one test of a store opened with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_issuances_unaudited() {
    run(Db::sqlite_with(false).await, |s, _| {
        issuances_are_not_recorded_when_turned_off(s)
    })
    .await;
}

/// [`sqlite_issuances_unaudited`] on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_issuances_unaudited() {
    let Some(db) = Db::postgres_with(false).await else {
        return;
    };
    run(db, |s, _| issuances_are_not_recorded_when_turned_off(s)).await;
}

// === helpers ===

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://example.org{s}")).unwrap()
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn sha(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn entry(path: &str, parent: &str, sels: &[&str]) -> NewEntry {
    NewEntry::new(id(path), id(parent), sels.iter().map(|s| sel(s)).collect())
}

// === entries ===

async fn entry_crud_and_revision_conflict(s: Arc<dyn Store>) {
    let mut new = entry("/api", "/node/a", &["unix:uid:1000", "k8s:ns:payments"]);
    new.x509_ttl = Duration::from_secs(3600);
    new.dns_names = vec!["api.example.org".into()];
    new.federates_with = vec![TrustDomain::new("partner.org").unwrap()];
    new.admin = true;
    let created = s.create_entry(new).await.unwrap();
    assert_eq!(created.revision, 1);
    assert_eq!(
        created.selectors,
        vec![sel("k8s:ns:payments"), sel("unix:uid:1000")]
    );

    let got = s.get_entry(&created.id).await.unwrap().unwrap();
    assert_eq!(got, created, "an entry reads back exactly as created");
    assert_eq!(s.count_entries().await.unwrap(), 1);

    let change = EntryUpdate {
        selectors: Some(vec![sel("unix:uid:2000")]),
        jwt_ttl: Some(Duration::from_secs(300)),
        ..EntryUpdate::default()
    };
    let updated = s
        .update_entry(&created.id, change.clone(), Some(1))
        .await
        .unwrap();
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.selectors, vec![sel("unix:uid:2000")]);
    assert_eq!(updated.jwt_ttl, Duration::from_secs(300));
    assert_eq!(
        updated.x509_ttl,
        Duration::from_secs(3600),
        "untouched fields stay"
    );
    assert_eq!(s.get_entry(&created.id).await.unwrap().unwrap(), updated);

    // A writer holding the old revision loses and changes nothing.
    let stale = s
        .update_entry(&created.id, EntryUpdate::default(), Some(1))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    assert_eq!(s.get_entry(&created.id).await.unwrap().unwrap().revision, 2);
    // Without an expected revision the update always applies.
    let forced = s
        .update_entry(&created.id, EntryUpdate::default(), None)
        .await
        .unwrap();
    assert_eq!(forced.revision, 3);

    let deleted = s.delete_entry(&created.id).await.unwrap();
    assert_eq!(deleted.id, created.id);
    assert!(s.get_entry(&created.id).await.unwrap().is_none());
    assert_eq!(s.count_entries().await.unwrap(), 0);
    assert!(matches!(
        s.delete_entry(&created.id).await,
        Err(StoreError::NotFound { .. })
    ));
    let missing = s
        .update_entry(&created.id, EntryUpdate::default(), None)
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })));
}

async fn get_entries_returns_found_entries_once_each(s: Arc<dyn Store>) {
    let mut multi = entry("/api", "/node/a", &["unix:uid:1", "k8s:ns:a", "k8s:sa:api"]);
    multi.dns_names = vec!["api.example.org".into()];
    let a = s.create_entry(multi).await.unwrap();
    let b = s
        .create_entry(entry("/db", "/node/b", &["unix:uid:2"]))
        .await
        .unwrap();
    let c = s
        .create_entry(entry("/web", "/node/a", &["unix:uid:3", "unix:gid:3"]))
        .await
        .unwrap();
    let mut by_id = vec![a.clone(), b.clone(), c.clone()];
    by_id.sort_by(|x, y| x.id.cmp(&y.id));

    // Found: every entry reads back exactly as get_entry returns it
    // (selectors included), in ID order, whatever order they were asked in.
    let asked = vec![c.id.clone(), a.id.clone(), b.id.clone()];
    let got = s.get_entries(&asked).await.unwrap();
    assert_eq!(got, by_id);
    for e in &got {
        assert_eq!(&s.get_entry(&e.id).await.unwrap().unwrap(), e);
    }
    assert_eq!(
        got.iter().find(|e| e.id == a.id).unwrap().selectors.len(),
        3
    );

    // Missing IDs are left out; the found ones still come back.
    let missing = "0".repeat(32);
    let got = s
        .get_entries(&[missing.clone(), b.id.clone(), "not-an-id".into()])
        .await
        .unwrap();
    assert_eq!(got, vec![b.clone()]);
    assert!(s.get_entries(&[missing]).await.unwrap().is_empty());

    // Repeats count once.
    let got = s
        .get_entries(&[a.id.clone(), a.id.clone(), c.id.clone(), a.id.clone()])
        .await
        .unwrap();
    let mut want = vec![a.clone(), c.clone()];
    want.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(got, want);

    // An empty list is an empty answer.
    assert!(s.get_entries(&[]).await.unwrap().is_empty());

    // A full batch of the limit is served; one more is refused.
    let mut full: Vec<String> = (0..MAX_GET_ENTRIES - 1)
        .map(|i| format!("{i:032x}"))
        .collect();
    full.push(c.id.clone());
    assert_eq!(s.get_entries(&full).await.unwrap(), vec![c.clone()]);
    full.push(a.id.clone());
    let over = s.get_entries(&full).await;
    assert!(matches!(over, Err(StoreError::Invalid(_))), "{over:?}");

    // A deleted entry is no longer found.
    s.delete_entry(&b.id).await.unwrap();
    assert!(
        s.get_entries(std::slice::from_ref(&b.id))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn concurrent_updates_of_one_revision_have_one_winner(s: Arc<dyn Store>) {
    let e = s
        .create_entry(entry("/api", "/node/a", &["unix:uid:1"]))
        .await
        .unwrap();
    let writers: Vec<_> = (0..6u64)
        .map(|i| {
            let s = s.clone();
            let id = e.id.clone();
            tokio::spawn(async move {
                let change = EntryUpdate {
                    x509_ttl: Some(Duration::from_secs(60 + i)),
                    ..EntryUpdate::default()
                };
                s.update_entry(&id, change, Some(1)).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for w in futures::future::join_all(writers).await {
        match w.unwrap() {
            Ok(updated) => winners.push(updated),
            Err(StoreError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected error from a losing writer: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer of revision 1 wins");
    assert_eq!(s.get_entry(&e.id).await.unwrap().unwrap(), winners[0]);
    assert_eq!(winners[0].revision, 2);
}

async fn duplicate_entry_is_rejected(s: Arc<dyn Store>) {
    s.create_entry(entry("/api", "/node/a", &["unix:uid:1", "unix:gid:2"]))
        .await
        .unwrap();
    // Same ID, parent and selector set (other order, a repeat) → duplicate.
    let dup = s
        .create_entry(entry(
            "/api",
            "/node/a",
            &["unix:gid:2", "unix:uid:1", "unix:uid:1"],
        ))
        .await;
    assert!(
        matches!(dup, Err(StoreError::AlreadyExists { .. })),
        "{dup:?}"
    );
    // Any difference makes a distinct entry.
    s.create_entry(entry("/api", "/node/b", &["unix:uid:1", "unix:gid:2"]))
        .await
        .unwrap();
    let other = s
        .create_entry(entry("/api", "/node/a", &["unix:uid:1"]))
        .await
        .unwrap();
    assert_eq!(s.count_entries().await.unwrap(), 3);
    // Updating into a duplicate is refused too, and changes nothing.
    let clash = EntryUpdate {
        selectors: Some(vec![sel("unix:uid:1"), sel("unix:gid:2")]),
        ..EntryUpdate::default()
    };
    let res = s.update_entry(&other.id, clash, None).await;
    assert!(
        matches!(res, Err(StoreError::AlreadyExists { .. })),
        "{res:?}"
    );
    assert_eq!(s.get_entry(&other.id).await.unwrap().unwrap(), other);
}

/// An entry and its selectors are read in one snapshot: a delete landing
/// between the two reads once made a listed entry look corrupt (no
/// selectors), which the Kubernetes controller's churn of pods hit.
async fn listing_while_entries_are_deleted_never_reads_half_an_entry(s: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..400 {
        let e = s
            .create_entry(entry(
                &format!("/churn/{i}"),
                "/node/a",
                &[&format!("unix:uid:{i}")],
            ))
            .await
            .unwrap();
        ids.push(e.id);
    }
    let deleter = {
        let s = s.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            for id in ids {
                s.delete_entry(&id).await.unwrap();
            }
        })
    };
    let parents = [id("/node/a")];
    let mut rounds = 0;
    while !deleter.is_finished() && rounds < 10_000 {
        rounds += 1;
        s.list_entries(&EntryFilter::default(), &Page::first(50))
            .await
            .expect("a list racing deletes");
        s.list_entries_by_parents(&parents, &Page::first(50))
            .await
            .expect("a sync query racing deletes");
        if let Some(id) = ids.get(rounds % ids.len()) {
            s.get_entry(id).await.expect("a get racing deletes");
        }
    }
    deleter.await.unwrap();
    assert_eq!(s.count_entries().await.unwrap(), 0);
}

async fn paging_visits_every_entry_once(s: Arc<dyn Store>) {
    let mut want = HashSet::new();
    for i in 0..2500 {
        let e = s
            .create_entry(entry(
                &format!("/w/{i}"),
                "/node/a",
                &[&format!("unix:uid:{i}")],
            ))
            .await
            .unwrap();
        want.insert(e.id);
    }
    assert_eq!(s.count_entries().await.unwrap(), 2500);
    let mut seen = HashSet::new();
    let mut page = Page::first(300);
    let mut pages = 0;
    loop {
        let (items, next) = s
            .list_entries(&EntryFilter::default(), &page)
            .await
            .unwrap();
        pages += 1;
        assert!(items.len() <= 300);
        for e in items {
            assert!(seen.insert(e.id.clone()), "entry {} returned twice", e.id);
        }
        match next {
            Some(cursor) => page = Page::after(cursor, 300),
            None => break,
        }
    }
    assert_eq!(seen, want, "every entry exactly once");
    assert_eq!(pages, 9);
    // Oversized limits are clamped to 1000.
    let (big, _) = s
        .list_entries(&EntryFilter::default(), &Page::first(50_000))
        .await
        .unwrap();
    assert_eq!(big.len(), 1000);
}

async fn sync_query_returns_entries_of_all_given_parents(s: Arc<dyn Store>) {
    for parent in ["/node/a", "/node/b", "/node/c"] {
        for i in 0..5 {
            s.create_entry(entry(&format!("{parent}/w{i}"), parent, &["unix:uid:1"]))
                .await
                .unwrap();
        }
    }
    let parents = [id("/node/a"), id("/node/c"), id("/node/unknown")];
    let mut got = Vec::new();
    let mut page = Page::first(4);
    loop {
        let (items, next) = s.list_entries_by_parents(&parents, &page).await.unwrap();
        got.extend(items);
        match next {
            Some(c) => page = Page::after(c, 4),
            None => break,
        }
    }
    assert_eq!(got.len(), 10);
    assert!(
        got.iter()
            .all(|e| e.parent_id == id("/node/a") || e.parent_id == id("/node/c"))
    );
    assert!(
        got.iter().all(|e| e.selectors == vec![sel("unix:uid:1")]),
        "selectors loaded"
    );
    let (none, next) = s
        .list_entries_by_parents(&[], &Page::default())
        .await
        .unwrap();
    assert!(none.is_empty() && next.is_none());
}

async fn selector_filter_finds_entries_carrying_it(s: Arc<dyn Store>) {
    let a = s
        .create_entry(entry("/a", "/node/a", &["k8s:ns:pay", "k8s:sa:api"]))
        .await
        .unwrap();
    let b = s
        .create_entry(entry("/b", "/node/b", &["k8s:ns:pay"]))
        .await
        .unwrap();
    s.create_entry(entry("/c", "/node/a", &["k8s:ns:web"]))
        .await
        .unwrap();

    let by_sel = EntryFilter {
        selector: Some(sel("k8s:ns:pay")),
        ..EntryFilter::default()
    };
    let (found, _) = s.list_entries(&by_sel, &Page::default()).await.unwrap();
    let ids: HashSet<_> = found.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, HashSet::from([a.id.clone(), b.id.clone()]));

    let combined = EntryFilter {
        selector: Some(sel("k8s:ns:pay")),
        parent_id: Some(id("/node/a")),
        ..EntryFilter::default()
    };
    let (found, _) = s.list_entries(&combined, &Page::default()).await.unwrap();
    assert_eq!(found, vec![a.clone()]);

    let by_id = EntryFilter {
        spiffe_id: Some(id("/b")),
        ..EntryFilter::default()
    };
    assert_eq!(
        s.list_entries(&by_id, &Page::default()).await.unwrap().0,
        vec![b]
    );
    let nothing = EntryFilter {
        selector: Some(sel("k8s:ns:none")),
        ..EntryFilter::default()
    };
    assert!(
        s.list_entries(&nothing, &Page::default())
            .await
            .unwrap()
            .0
            .is_empty()
    );
}

async fn invalid_entries_are_refused(s: Arc<dyn Store>) {
    let none = s.create_entry(entry("/x", "/node/a", &[])).await;
    assert!(matches!(none, Err(StoreError::Invalid(_))), "{none:?}");
    let mut bad_dns = entry("/x", "/node/a", &["unix:uid:1"]);
    bad_dns.dns_names = vec!["bad name\n".into()];
    assert!(matches!(
        s.create_entry(bad_dns).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.count_entries().await.unwrap(), 0, "nothing stored");
}

// === join tokens ===

fn token(id: &str, secret: &str, expires: u64) -> JoinToken {
    JoinToken {
        id: id.into(),
        hash: sha(secret),
        spiffe_id: Some(id_alias()),
        expires_at: at(expires),
        used_at: None,
        tenant: String::new(),
    }
}

fn id_alias() -> SpiffeId {
    id("/node/alias")
}

async fn join_token_is_consumed_once(s: Arc<dyn Store>) {
    s.create_join_token(&token("t1", "secret-1", 2_000))
        .await
        .unwrap();
    s.create_join_token(&token("t2", "secret-2", 2_000))
        .await
        .unwrap();
    let dup = s.create_join_token(&token("t1", "secret-3", 2_000)).await;
    assert!(
        matches!(dup, Err(StoreError::AlreadyExists { .. })),
        "{dup:?}"
    );

    let used = s
        .consume_join_token(&sha("secret-1"), at(1_000))
        .await
        .unwrap();
    assert_eq!(used.id, "t1");
    assert_eq!(used.used_at, Some(at(1_000)));
    assert_eq!(used.spiffe_id, Some(id_alias()));
    let again = s.consume_join_token(&sha("secret-1"), at(1_001)).await;
    assert!(matches!(again, Err(StoreError::TokenUsed)), "{again:?}");

    let late = s.consume_join_token(&sha("secret-2"), at(2_000)).await;
    assert!(
        matches!(late, Err(StoreError::TokenExpired)),
        "expiry is exclusive: {late:?}"
    );
    let unknown = s.consume_join_token(&sha("never-issued"), at(1_000)).await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound { .. })),
        "{unknown:?}"
    );

    let short = JoinToken {
        hash: vec![1, 2, 3],
        ..token("t3", "x", 2_000)
    };
    assert!(matches!(
        s.create_join_token(&short).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn concurrent_token_consumers_have_one_winner(s: Arc<dyn Store>) {
    for round in 0..5 {
        let secret = format!("race-{round}");
        s.create_join_token(&token(&format!("r{round}"), &secret, 2_000))
            .await
            .unwrap();
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                let hash = sha(&secret);
                tokio::spawn(async move { s.consume_join_token(&hash, at(1_000)).await })
            })
            .collect();
        let mut wins = 0;
        for r in futures::future::join_all(racers).await {
            match r.unwrap() {
                Ok(_) => wins += 1,
                Err(StoreError::TokenUsed) => {}
                Err(e) => panic!("unexpected error from a losing consumer: {e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one consumer wins");
    }
}

// === issuance ===

fn issuance(serial: String, i: u64) -> IssuanceRecord {
    IssuanceRecord {
        serial,
        spiffe_id: id(&format!("/w/{i}")),
        agent_id: i.is_multiple_of(2).then(|| id("/node/a")),
        entry_id: i.is_multiple_of(3).then(|| format!("entry-{i}")),
        not_after: at(10_000 + i),
        issued_at: at(1_000 + i),
        ca_key_id: i.is_multiple_of(5).then(|| format!("key-{}", i % 3)),
        tenant: String::new(),
    }
}

async fn issuance_batch_is_all_or_nothing(s: Arc<dyn Store>) {
    let batch: Vec<_> = (0..5000)
        .map(|i| issuance(format!("{i:032x}"), i))
        .collect();
    s.record_issuances(&batch).await.unwrap();
    assert_eq!(s.count_issuances().await.unwrap(), 5000);
    assert_eq!(
        s.get_issuance(&batch[4242].serial).await.unwrap().unwrap(),
        batch[4242]
    );
    assert_eq!(
        s.get_issuance(&batch[3].serial).await.unwrap().unwrap(),
        batch[3]
    );
    assert!(s.get_issuance("ffff").await.unwrap().is_none());

    // A second batch whose last row repeats a stored serial stores nothing.
    let mut bad: Vec<_> = (5000..10_000)
        .map(|i| issuance(format!("{i:032x}"), i))
        .collect();
    bad[4999].serial = batch[0].serial.clone();
    let res = s.record_issuances(&bad).await;
    assert!(
        matches!(res, Err(StoreError::AlreadyExists { .. })),
        "{res:?}"
    );
    assert_eq!(s.count_issuances().await.unwrap(), 5000);
    assert!(s.get_issuance(&bad[0].serial).await.unwrap().is_none());

    // So does a batch that repeats a serial within itself.
    let inner = vec![
        issuance("aa".into(), 1),
        issuance("bb".into(), 2),
        issuance("aa".into(), 3),
    ];
    assert!(s.record_issuances(&inner).await.is_err());
    assert_eq!(s.count_issuances().await.unwrap(), 5000);
    s.record_issuances(&[]).await.unwrap();
}

// === bundles ===

fn bundle(seq: i64) -> StoredBundle {
    StoredBundle {
        trust_domain: TrustDomain::new("example.org").unwrap(),
        spiffe_json: format!("{{\"spiffe_sequence\":{seq},\"keys\":[]}}").into_bytes(),
        sequence: seq,
        updated_at: at(5_000 + seq as u64),
    }
}

async fn bundle_updates_check_the_sequence(s: Arc<dyn Store>) {
    let td = TrustDomain::new("example.org").unwrap();
    assert!(s.get_bundle(&td).await.unwrap().is_none());
    s.put_bundle(&bundle(1), Some(0)).await.unwrap();
    let again = s.put_bundle(&bundle(1), Some(0)).await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "create-only on existing"
    );
    s.put_bundle(&bundle(2), Some(1)).await.unwrap();
    let stale = s.put_bundle(&bundle(3), Some(1)).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    assert_eq!(s.get_bundle(&td).await.unwrap().unwrap(), bundle(2));
    let missing = StoredBundle {
        trust_domain: TrustDomain::new("other.org").unwrap(),
        ..bundle(2)
    };
    assert!(matches!(
        s.put_bundle(&missing, Some(1)).await,
        Err(StoreError::Conflict { .. })
    ));
    s.put_bundle(&missing, None).await.unwrap();
    s.put_bundle(&bundle(7), None).await.unwrap();
    let all = s.list_bundles().await.unwrap();
    assert_eq!(all, vec![bundle(7), missing]);
}

// === agents ===

fn agent(path: &str) -> Agent {
    Agent {
        spiffe_id: id(path),
        attestation_type: "join_token".into(),
        serial: "01ab".into(),
        previous_serial: None,
        expires_at: at(9_000),
        banned: false,
        selectors: vec![sel("join_token:t1")],
        tenant: String::new(),
        created_at: at(1_000),
        updated_at: at(1_000),
    }
}

async fn agents_can_be_banned_renewed_and_evicted(s: Arc<dyn Store>) {
    for i in 0..7 {
        s.upsert_agent(&agent(&format!("/agent/{i}")))
            .await
            .unwrap();
    }
    assert_eq!(s.count_agents().await.unwrap(), 7);
    let a3 = id("/agent/3");
    assert_eq!(s.get_agent(&a3).await.unwrap().unwrap(), agent("/agent/3"));

    s.renew_agent_serial(&a3, "01ab", "02cd", at(19_000))
        .await
        .unwrap();
    let renewed = s.get_agent(&a3).await.unwrap().unwrap();
    assert_eq!(
        (
            renewed.serial.as_str(),
            renewed.previous_serial.as_deref(),
            renewed.expires_at
        ),
        ("02cd", Some("01ab"), at(19_000))
    );
    // A banned agent cannot renew, even with its current SVID.
    s.set_agent_banned(&a3, true).await.unwrap();
    assert!(s.get_agent(&a3).await.unwrap().unwrap().banned);
    let banned = s.renew_agent_serial(&a3, "02cd", "03ef", at(29_000)).await;
    assert!(
        matches!(banned, Err(StoreError::Conflict { .. })),
        "{banned:?}"
    );
    assert_eq!(s.get_agent(&a3).await.unwrap().unwrap().serial, "02cd");

    // Re-attestation replaces selectors but keeps the first-seen time.
    let mut again = agent("/agent/3");
    again.selectors = vec![sel("k8s:node:n1"), sel("k8s:ns:kube-system")];
    again.created_at = at(8_000);
    s.upsert_agent(&again).await.unwrap();
    let got = s.get_agent(&a3).await.unwrap().unwrap();
    assert_eq!(got.selectors, again.selectors);
    assert_eq!(got.created_at, at(1_000));

    s.delete_agent(&a3).await.unwrap();
    assert!(s.get_agent(&a3).await.unwrap().is_none());
    assert!(matches!(
        s.delete_agent(&a3).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.set_agent_banned(&a3, false).await,
        Err(StoreError::NotFound { .. })
    ));
    let renew = s.renew_agent_serial(&a3, "01ab", "03", at(1)).await;
    assert!(matches!(renew, Err(StoreError::NotFound { .. })));
    // Confirming an unknown agent is a no-op, like confirming twice.
    s.confirm_agent_serial(&a3, "03").await.unwrap();

    let mut listed = Vec::new();
    let mut page = Page::first(2);
    loop {
        let (items, next) = s.list_agents(&page).await.unwrap();
        listed.extend(items.into_iter().map(|a| a.spiffe_id));
        match next {
            Some(c) => page = Page::after(c, 2),
            None => break,
        }
    }
    let want: Vec<_> = [0, 1, 2, 4, 5, 6]
        .iter()
        .map(|i| id(&format!("/agent/{i}")))
        .collect();
    assert_eq!(listed, want);
}

/// Serials an agent may call with after attest (01), renew (02), renew (03).
async fn renewal_keeps_only_the_serial_renewed_from(s: Arc<dyn Store>) {
    let a = id("/agent/r");
    s.upsert_agent(&agent("/agent/r")).await.unwrap();
    let serials = |s: Arc<dyn Store>| {
        let a = a.clone();
        async move {
            let got = s.get_agent(&a).await.unwrap().unwrap();
            (got.serial, got.previous_serial)
        }
    };
    assert_eq!(serials(s.clone()).await, ("01ab".into(), None));

    // Renewing from the current SVID keeps it as the previous one.
    s.renew_agent_serial(&a, "01ab", "02", at(10_000))
        .await
        .unwrap();
    assert_eq!(serials(s.clone()).await, ("02".into(), Some("01ab".into())));
    // Confirming the previous serial changes nothing; the current one
    // retires the previous (and again is a no-op).
    s.confirm_agent_serial(&a, "01ab").await.unwrap();
    assert_eq!(serials(s.clone()).await, ("02".into(), Some("01ab".into())));
    s.confirm_agent_serial(&a, "02").await.unwrap();
    s.confirm_agent_serial(&a, "02").await.unwrap();
    assert_eq!(serials(s.clone()).await, ("02".into(), None));
    let stale = s.renew_agent_serial(&a, "01ab", "09", at(1)).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );

    // Renewing again from the previous SVID (the agent lost the reply)
    // keeps that one and drops the never-used one in between.
    s.renew_agent_serial(&a, "02", "03", at(20_000))
        .await
        .unwrap();
    s.renew_agent_serial(&a, "02", "04", at(30_000))
        .await
        .unwrap();
    assert_eq!(serials(s.clone()).await, ("04".into(), Some("02".into())));
    let skipped = s.renew_agent_serial(&a, "03", "05", at(1)).await;
    assert!(matches!(skipped, Err(StoreError::Conflict { .. })));

    // Renewing from the newest drops the older one: after two renewals the
    // first SVID is gone.
    s.renew_agent_serial(&a, "04", "05", at(40_000))
        .await
        .unwrap();
    assert_eq!(serials(s.clone()).await, ("05".into(), Some("04".into())));
    assert_eq!(
        s.get_agent(&a).await.unwrap().unwrap().expires_at,
        at(40_000)
    );

    // Re-attestation starts over with no previous serial.
    let mut again = agent("/agent/r");
    again.serial = "06".into();
    s.upsert_agent(&again).await.unwrap();
    assert_eq!(serials(s.clone()).await, ("06".into(), None));
    let bad = s.renew_agent_serial(&a, "", "07", at(1)).await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
}

async fn concurrent_renewals_leave_one_current_serial(s: Arc<dyn Store>) {
    let a = id("/agent/c");
    s.upsert_agent(&agent("/agent/c")).await.unwrap();
    s.renew_agent_serial(&a, "01ab", "02", at(10_000))
        .await
        .unwrap();
    s.confirm_agent_serial(&a, "02").await.unwrap();
    // Eight renewals race from serial 02. Each sees 02 as current or as
    // previous, so each lands; the last one's serial is current and 02 the
    // previous, never a mix of two writes.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let a = a.clone();
            tokio::spawn(async move {
                s.renew_agent_serial(&a, "02", &format!("1{i}"), at(20_000))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let got = s.get_agent(&a).await.unwrap().unwrap();
    assert!((0..8).any(|i| got.serial == format!("1{i}")), "{got:?}");
    assert_eq!(got.previous_serial.as_deref(), Some("02"));
    // A renewal from one of the losers' serials is refused.
    let loser = (0..8)
        .map(|i| format!("1{i}"))
        .find(|x| *x != got.serial)
        .unwrap();
    let refused = s.renew_agent_serial(&a, &loser, "20", at(1)).await;
    assert!(matches!(refused, Err(StoreError::Conflict { .. })));
}

// === the store's clock ===

/// Entry and agent stamps come from the clock the store was opened with
/// (not the database's, not the system's), so a test can move time.
async fn row_stamps_follow_the_store_clock(s: Arc<dyn Store>, clock: ManualClock) {
    let t0 = at(1_800_000_000);
    let later = |secs| t0 + Duration::from_secs(secs);
    clock.set(t0);
    let e = s
        .create_entry(entry("/api", "/node/a", &["unix:uid:1"]))
        .await
        .unwrap();
    assert_eq!((e.created_at, e.updated_at), (t0, t0));
    assert_eq!(s.get_entry(&e.id).await.unwrap().unwrap(), e);

    clock.advance(Duration::from_secs(90));
    let admin = EntryUpdate {
        admin: Some(true),
        ..EntryUpdate::default()
    };
    let u = s.update_entry(&e.id, admin, Some(1)).await.unwrap();
    assert_eq!((u.created_at, u.updated_at), (t0, later(90)));
    assert_eq!(s.get_entry(&e.id).await.unwrap().unwrap(), u);

    let a = id("/agent/1");
    s.upsert_agent(&agent("/agent/1")).await.unwrap();
    clock.advance(Duration::from_secs(30));
    s.set_agent_banned(&a, true).await.unwrap();
    let banned = s.get_agent(&a).await.unwrap().unwrap();
    assert_eq!(
        (banned.created_at, banned.updated_at),
        (at(1_000), later(120))
    );

    clock.advance(Duration::from_secs(30));
    s.set_agent_banned(&a, false).await.unwrap();
    clock.advance(Duration::from_secs(5));
    s.renew_agent_serial(&a, "01ab", "02cd", later(3_600))
        .await
        .unwrap();
    let renewed = s.get_agent(&a).await.unwrap().unwrap();
    assert_eq!(renewed.updated_at, later(155));
    assert_eq!(renewed.expires_at, later(3_600));
}

// === health ===

async fn health_answers(s: Arc<dyn Store>) {
    s.health().await.unwrap();
}

// === backend-specific ===

#[tokio::test]
async fn sqlite_file_keeps_data_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nested/dir/ca.db").display());
    let created = {
        let s = open(&url).await.unwrap();
        s.create_join_token(&token("t1", "s", 2_000)).await.unwrap();
        s.create_entry(entry("/api", "/node/a", &["unix:uid:1"]))
            .await
            .unwrap()
    };
    let s = open(&url).await.unwrap();
    assert_eq!(s.get_entry(&created.id).await.unwrap().unwrap(), created);
    assert_eq!(
        s.consume_join_token(&sha("s"), at(1_000)).await.unwrap().id,
        "t1"
    );
}

#[tokio::test]
async fn corrupt_rows_are_reported_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.db");
    let s = open(&format!("sqlite://{}", path.display())).await.unwrap();
    let e = s
        .create_entry(entry("/api", "/node/a", &["unix:uid:1"]))
        .await
        .unwrap();
    let mut raw = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE registration_entries SET spiffe_id = 'http://not/spiffe'")
        .execute(&mut raw)
        .await
        .unwrap();
    let err = s.get_entry(&e.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(&e.id), "{err}");
    let listed = s
        .list_entries(&EntryFilter::default(), &Page::default())
        .await;
    assert!(
        matches!(listed, Err(StoreError::Corrupt { .. })),
        "{listed:?}"
    );
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let s = open("sqlite::memory:").await.unwrap();
    s.create_entry(entry("/api", "/node/a", &["unix:uid:1"]))
        .await
        .unwrap();
    assert_eq!(s.count_entries().await.unwrap(), 1);
}

#[tokio::test]
async fn unwritable_sqlite_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let url = format!("sqlite://{}", file.join("ca.db").display());
    let err = open(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("not-a-dir") && msg.contains("writable"),
        "{msg}"
    );
}

#[tokio::test]
async fn unreachable_postgres_is_reported_with_redacted_url() {
    // Bind then drop a listener: the port is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://meshid:hunter2@127.0.0.1:{port}/meshid");
    let opts = OpenOptions {
        connect_timeout: Duration::from_millis(300),
        ..OpenOptions::default()
    };
    let err = store::open_with(&url.parse().unwrap(), &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(!msg.contains("hunter2"), "password leaked: {msg}");
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("PostgreSQL is running"),
        "{msg}"
    );
}

#[tokio::test]
async fn unknown_url_scheme_is_refused() {
    let err = open("mysql://root:pw@db/ca").await.unwrap_err();
    assert!(matches!(err, StoreError::BadUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains(":pw@"));
}
