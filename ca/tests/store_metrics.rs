//! `MeteredStore` records each store call's latency and errors and keeps the
//! row-count gauges; the running CA serves its store through it, and a
//! `/metrics` scrape never counts rows.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_ca::server::CaServer;
use meshid_ca::store::{
    self, AuditEvent, AuditFilter, Change, Changed, KeyKind, KeySlot, MeteredStore, NewEntry,
    SlotState, SqliteStore, Store, StoreError, StoreMetrics, StoreUrl,
};
use meshid_identity::{Selector, SpiffeId};
use prometheus_client::registry::Registry;

#[path = "support/server.rs"]
mod server;

/// How long a gauge may take to show what was written.
const WAIT: Duration = Duration::from_secs(5);

fn id(path: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://example.org{path}")).unwrap()
}

fn entry(path: &str) -> NewEntry {
    NewEntry::new(
        id(path),
        id("/node"),
        vec![Selector::parse("unix:uid:1").unwrap()],
    )
}

/// The value of the sample line that starts with `name` (`None` if absent).
fn sample(text: &str, name: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    line.rsplit(' ').next()?.parse().ok()
}

#[tokio::test]
async fn store_calls_are_metered_and_scrapes_do_not_count_rows() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = server::config(&dir.path().join("ca")).validate().unwrap();
    // An entry written before this CA started (as by another replica).
    let before = store::open(&StoreUrl::sqlite_file(&dir.path().join("ca/ca.db")))
        .await
        .unwrap();
    before.create_entry(entry("/before")).await.unwrap();
    drop(before);

    let ca = CaServer::start(cfg).await.unwrap();
    // The row counts are read at start, in the background: wait for them.
    meshid_tests::eventually_async("the entries gauge at 1", WAIT, || async {
        (sample(&ca.metrics.encode(), "meshid_ca_entries ") == Some(1.0)).then_some(())
    })
    .await;
    let text = ca.metrics.encode();
    assert_eq!(sample(&text, "meshid_ca_entries "), Some(1.0), "{text}");
    let counted = "meshid_ca_store_call_duration_seconds_count{op=\"count_entries\"}";
    let counts_at_start = sample(&text, counted).unwrap();
    // Start-up published the trust bundle through the metered store.
    let published = "meshid_ca_store_call_duration_seconds_count{op=\"put_bundle\"}";
    assert!(sample(&text, published).unwrap() >= 1.0, "{text}");

    ca.store.create_entry(entry("/api")).await.unwrap();
    let missing = ca.store.delete_entry("no-such-entry").await.unwrap_err();
    assert!(
        matches!(missing, StoreError::NotFound { .. }),
        "{missing:?}"
    );

    let url = format!("http://{}/metrics", ca.ops_addr);
    for _ in 0..3 {
        meshid_runtime::ops::probe(&url, Duration::from_secs(5))
            .await
            .unwrap();
    }
    let text = ca.metrics.encode();
    // This CA's write moved the gauge; the scrapes counted nothing.
    assert_eq!(sample(&text, "meshid_ca_entries "), Some(2.0), "{text}");
    assert_eq!(sample(&text, counted), Some(counts_at_start), "{text}");
    let failed = "meshid_ca_store_call_errors_total{op=\"delete_entry\",kind=\"not_found\"}";
    assert_eq!(sample(&text, failed), Some(1.0), "{text}");
    ca.shutdown().await.unwrap();
}

// === the wrapper alone ===

async fn metered() -> (MeteredStore, Arc<dyn Store>, Registry) {
    let inner: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    let mut registry = Registry::with_prefix("meshid_ca");
    let metrics = StoreMetrics::register(&mut registry);
    (
        MeteredStore::new(Arc::clone(&inner), metrics),
        inner,
        registry,
    )
}

fn text(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
    out
}

#[tokio::test]
async fn calls_show_up_in_the_latency_histogram() {
    let (store, _, registry) = metered().await;
    let created = store.create_entry(entry("/api")).await.unwrap();
    store.get_entry(&created.id).await.unwrap();
    store.get_entry("nothing-here").await.unwrap();
    let text = text(&registry);
    assert!(
        text.contains("meshid_ca_store_call_duration_seconds_count{op=\"create_entry\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("meshid_ca_store_call_duration_seconds_count{op=\"get_entry\"} 2"),
        "{text}"
    );
    // A miss is an answer, not an error.
    assert!(
        !text.contains("meshid_ca_store_call_errors_total{"),
        "{text}"
    );
}

#[tokio::test]
async fn failures_are_counted_by_operation_and_kind() {
    let (store, _, registry) = metered().await;
    let err = store.delete_entry("nothing-here").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    store.create_entry(entry("/api")).await.unwrap();
    let err = store.create_entry(entry("/api")).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    let text = text(&registry);
    assert!(
        text.contains(
            "meshid_ca_store_call_errors_total{op=\"delete_entry\",kind=\"not_found\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "meshid_ca_store_call_errors_total{op=\"create_entry\",kind=\"already_exists\"} 1"
        ),
        "{text}"
    );
    // The failed calls were timed too.
    assert!(
        text.contains("meshid_ca_store_call_duration_seconds_count{op=\"create_entry\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn key_journal_and_lease_calls_are_metered() {
    let (store, _, registry) = metered().await;
    let lease = store
        .acquire_lease("rotation", "ca-a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(store.list_key_slots().await.unwrap().is_empty());
    let err = store
        .delete_key_slot("ca-a/x509/1", &lease)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    store.release_lease(&lease).await.unwrap();
    let slot = KeySlot {
        id: KeySlot::slot_id("ca-a", KeyKind::Jwt, 1),
        replica: "ca-a".into(),
        kind: KeyKind::Jwt,
        generation: 1,
        state: SlotState::Prepared,
        key_id: "kid-1".into(),
        key_slot: "jwt".into(),
        key_ref: "memory".into(),
        public_pem: String::new(),
        roots_pem: String::new(),
        not_before: SystemTime::now(),
        not_after: SystemTime::now(),
        prepared_at: SystemTime::now(),
        activated_at: None,
        retired_at: None,
        publish_until: None,
        tainted: false,
        updated_at: SystemTime::now(),
    };
    let err = store.put_key_slot(&slot, &lease).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err:?}");
    assert!(store.live_issuances_by_key().await.unwrap().is_empty());
    let text = text(&registry);
    for op in [
        "acquire_lease",
        "list_key_slots",
        "delete_key_slot",
        "release_lease",
        "put_key_slot",
        "live_issuances_by_key",
    ] {
        let count = format!("meshid_ca_store_call_duration_seconds_count{{op=\"{op}\"}} 1");
        assert!(text.contains(&count), "{op}: {text}");
    }
    for (op, kind) in [
        ("delete_key_slot", "not_found"),
        ("put_key_slot", "lease_lost"),
    ] {
        let errors = format!("meshid_ca_store_call_errors_total{{op=\"{op}\",kind=\"{kind}\"}} 1");
        assert!(text.contains(&errors), "{op}: {text}");
    }
}

#[tokio::test]
async fn gauges_follow_own_writes_and_converge_on_others() {
    let (store, other_replica, registry) = metered().await;
    let gauge = |name: &str| {
        let text = text(&registry);
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("meshid_ca_{name} ")))
            .map(str::to_owned);
        line.unwrap_or_else(|| panic!("no {name} gauge in {text}"))
    };
    let a = store.create_entry(entry("/a")).await.unwrap();
    store.create_entry(entry("/b")).await.unwrap();
    store.delete_entry(&a.id).await.unwrap();
    assert_eq!(gauge("entries"), "meshid_ca_entries 1");
    // Writes that bypass this wrapper (another CA replica) show up at the
    // next refresh, with no COUNT(*) in between.
    other_replica.create_entry(entry("/c")).await.unwrap();
    other_replica.create_entry(entry("/d")).await.unwrap();
    assert_eq!(gauge("entries"), "meshid_ca_entries 1");
    store.refresh_counts().await.unwrap();
    assert_eq!(gauge("entries"), "meshid_ca_entries 3");
    assert_eq!(gauge("agents"), "meshid_ca_agents 0");
}

/// The tenancy and audit calls (#16) are metered; audited entry writes and
/// evictions move the gauges like the plain ones.
#[tokio::test]
async fn audited_writes_and_audit_reads_are_metered() {
    let (store, _, registry) = metered().await;
    let event = |change: &Change| AuditEvent {
        actor: "uid:0".into(),
        action: change.action().into(),
        result: "ok".into(),
        ..AuditEvent::default()
    };
    let apply = |change: Change| {
        let e = event(&change);
        store.audited(change, e)
    };
    let Changed::Entry(a) = apply(Change::CreateEntry(entry("/a"))).await.unwrap() else {
        panic!("not an entry");
    };
    apply(Change::CreateEntry(entry("/b"))).await.unwrap();
    apply(Change::DeleteEntry(a.id)).await.unwrap();
    let missing = apply(Change::DeleteTenant("nope".into())).await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })));
    store
        .append_audit(event(&Change::DeleteEntry(String::new())))
        .await
        .unwrap();
    store
        .list_audit(&AuditFilter::default(), 0, 10)
        .await
        .unwrap();
    assert_eq!(store.audit_head().await.unwrap().unwrap().0, 4);
    store.list_audit_checkpoints().await.unwrap();
    store.get_tenant("pay").await.unwrap();
    store.list_tenants().await.unwrap();
    store.list_bindings().await.unwrap();
    let text = text(&registry);
    assert!(text.contains("meshid_ca_entries 1"), "{text}");
    for (op, n) in [
        ("audited", 4),
        ("append_audit", 1),
        ("list_audit", 1),
        ("audit_head", 1),
        ("list_audit_checkpoints", 1),
        ("get_tenant", 1),
        ("list_tenants", 1),
        ("list_bindings", 1),
    ] {
        let line = format!("meshid_ca_store_call_duration_seconds_count{{op=\"{op}\"}} {n}");
        assert!(text.contains(&line), "{line} in {text}");
    }
    assert!(
        text.contains("meshid_ca_store_call_errors_total{op=\"audited\",kind=\"not_found\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn the_refresh_loop_stops_on_shutdown() {
    let (store, other_replica, registry) = metered().await;
    other_replica.create_entry(entry("/a")).await.unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let store = Arc::new(store);
    let looping = Arc::clone(&store);
    let task = tokio::spawn(async move {
        looping
            .refresh_counts_until(std::time::Duration::from_millis(10), rx)
            .await;
    });
    // The first tick is immediate; wait (bounded) for it to land.
    meshid_tests::eventually_async("the first gauge refresh", WAIT, || async {
        text(&registry)
            .contains("meshid_ca_entries 1")
            .then_some(())
    })
    .await;
    assert!(text(&registry).contains("meshid_ca_entries 1"));
    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}
