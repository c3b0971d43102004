//! The SVID manager against an in-memory CA that really signs.
#![allow(clippy::unwrap_used)]

#[path = "support/fake_ca.rs"]
mod fake_ca;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fake_ca::{FakeCa, t0};
use meshid_agent::cache::Snapshot;
use meshid_agent::manager::{ManagerConfig, ManagerHandle, SvidManager};
use meshid_agent::metrics::AgentMetrics;
use meshid_identity::{Selector, verify_x509_svid};
use meshid_runtime::clock::{ManualClock, TokioClock};

fn manager(
    ca: &Arc<FakeCa>,
    clock: meshid_runtime::clock::SharedClock,
) -> (SvidManager, ManagerHandle) {
    let mut config = ManagerConfig::new(ca.td.clone());
    config.batch_size = 500;
    SvidManager::new(config, ca.clone(), clock, AgentMetrics::default())
}

fn serials(s: &Snapshot) -> BTreeMap<String, String> {
    s.svids
        .iter()
        .map(|s| (s.entry.id.clone(), s.serial.clone()))
        .collect()
}

#[tokio::test]
async fn all_svids_are_issued_in_batches_of_at_most_500_and_verify() {
    let clock = ManualClock::new(t0());
    let ca = FakeCa::new(Arc::new(clock.clone()));
    ca.pretend_attested();
    ca.lock().page_size = 100;
    for i in 0..1001 {
        ca.add_entry(&format!("e{i}"), &format!("/w/{i}"), i);
    }
    let (mut m, handle) = manager(&ca, Arc::new(clock.clone()));
    m.tick().await.unwrap();

    assert_eq!(ca.lock().batches, vec![500, 500, 1]);
    let snap = handle.snapshot();
    assert_eq!(snap.svids.len(), 1001);
    assert_eq!(snap.trust_domain.as_ref(), Some(&ca.td));
    for s in &snap.svids {
        let v = verify_x509_svid(&s.chain, &snap.bundles, clock.now_for_test()).unwrap();
        assert_eq!(v.spiffe_id, s.entry.spiffe_id);
        assert_eq!(
            s.key.public_key_der(),
            x509_parser::parse_x509_certificate(&s.chain[0])
                .unwrap()
                .1
                .public_key()
                .raw
        );
    }
    // Only the SVID whose selectors match is served to uid 7.
    let sel = [Selector::parse("unix:uid:7").unwrap()];
    let mine = snap.svids_for(&sel, clock.now_for_test());
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].entry.spiffe_id.as_str(), "spiffe://example.org/w/7");
}

trait NowForTest {
    fn now_for_test(&self) -> std::time::SystemTime;
}
impl NowForTest for ManualClock {
    fn now_for_test(&self) -> std::time::SystemTime {
        meshid_runtime::clock::Clock::now(self)
    }
}

#[tokio::test]
async fn svids_rotate_between_40_and_60_percent_of_their_life_with_jitter() {
    let clock = ManualClock::new(t0());
    let ca = FakeCa::new(Arc::new(clock.clone()));
    ca.pretend_attested();
    for i in 0..30 {
        ca.add_entry(&format!("e{i}"), &format!("/w/{i}"), i);
    }
    let (mut m, handle) = manager(&ca, Arc::new(clock.clone()));
    m.tick().await.unwrap();
    let first = serials(&handle.snapshot());
    let first_gen = handle.snapshot().generation;

    // TTL 1000 s, notBefore back-dated 10 s: life 1010 s, so rotation is
    // due between 404 s and 606 s after notBefore, i.e. 394..596 s from now.
    let mut rotated_at: BTreeMap<String, u64> = BTreeMap::new();
    for step in (0..=700).step_by(10) {
        clock.set(t0() + Duration::from_secs(step));
        m.tick().await.unwrap();
        let now = serials(&handle.snapshot());
        for (id, serial) in &now {
            if first[id] != *serial {
                rotated_at.entry(id.clone()).or_insert(step);
            }
        }
    }
    assert_eq!(
        rotated_at.len(),
        30,
        "every SVID rotated once: {rotated_at:?}"
    );
    for (id, at) in &rotated_at {
        assert!((390..=600).contains(at), "{id} rotated at {at}s");
    }
    let distinct: std::collections::BTreeSet<_> = rotated_at.values().collect();
    assert!(
        distinct.len() > 1,
        "rotation times are jittered: {rotated_at:?}"
    );
    assert!(handle.snapshot().generation > first_gen);
}

#[tokio::test]
async fn unchanged_state_publishes_nothing_and_removed_entry_disappears() {
    let clock = ManualClock::new(t0());
    let ca = FakeCa::new(Arc::new(clock.clone()));
    ca.pretend_attested();
    for i in 0..3 {
        ca.add_entry(&format!("e{i}"), &format!("/w/{i}"), i);
    }
    let (mut m, handle) = manager(&ca, Arc::new(clock.clone()));
    m.tick().await.unwrap();
    let gen1 = handle.snapshot().generation;
    m.tick().await.unwrap();
    assert_eq!(
        handle.snapshot().generation,
        gen1,
        "no change, no new snapshot"
    );
    assert_eq!(ca.lock().batches, vec![3], "nothing re-issued");

    ca.lock().entries.retain(|e| e.id != "e1");
    m.tick().await.unwrap();
    let snap = handle.snapshot();
    assert_eq!(snap.generation, gen1 + 1);
    let ids: Vec<_> = snap.svids.iter().map(|s| s.entry.id.as_str()).collect();
    assert_eq!(ids, vec!["e0", "e2"]);
}

#[tokio::test]
async fn changed_entry_is_reissued_with_new_selectors() {
    let clock = ManualClock::new(t0());
    let ca = FakeCa::new(Arc::new(clock.clone()));
    ca.pretend_attested();
    ca.add_entry("e0", "/w/0", 10);
    let (mut m, handle) = manager(&ca, Arc::new(clock.clone()));
    m.tick().await.unwrap();
    {
        let mut st = ca.lock();
        st.entries[0].selectors[0].value = "uid:11".into();
        st.entries[0].revision = 2;
    }
    m.tick().await.unwrap();
    let snap = handle.snapshot();
    assert_eq!(ca.lock().batches, vec![1, 1]);
    assert_eq!(snap.svids[0].entry.revision, 2);
    let now = clock.now_for_test();
    assert!(
        snap.svids_for(&[Selector::parse("unix:uid:10").unwrap()], now)
            .is_empty()
    );
    assert_eq!(
        snap.svids_for(&[Selector::parse("unix:uid:11").unwrap()], now)
            .len(),
        1
    );
}

#[tokio::test]
async fn ca_down_keeps_serving_cached_svids_until_expiry_then_recovers() {
    let clock = ManualClock::new(t0());
    let ca = FakeCa::new(Arc::new(clock.clone()));
    ca.pretend_attested();
    ca.add_entry("e0", "/w/0", 1);
    ca.add_entry("e1", "/w/1", 2);
    let (mut m, handle) = manager(&ca, Arc::new(clock.clone()));
    m.tick().await.unwrap();
    let before = serials(&handle.snapshot());

    ca.lock().down = true;
    clock.set(t0() + Duration::from_secs(700)); // past rotation, before expiry
    assert!(m.tick().await.unwrap_err().is_transient());
    assert_eq!(
        serials(&handle.snapshot()),
        before,
        "cached SVIDs still served"
    );

    clock.set(t0() + Duration::from_secs(1001)); // past notAfter
    m.tick().await.unwrap_err();
    let snap = handle.snapshot();
    assert!(snap.svids.is_empty(), "no SVID is served past its expiry");
    assert!(
        snap.svids_for(
            &[Selector::parse("unix:uid:1").unwrap()],
            clock.now_for_test()
        )
        .is_empty()
    );

    ca.lock().down = false;
    m.tick().await.unwrap();
    let snap = handle.snapshot();
    assert_eq!(snap.svids.len(), 2);
    assert!(
        snap.svids
            .iter()
            .all(|s| s.not_after > clock.now_for_test())
    );
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_to_at_most_10s_and_a_recovered_ca_is_used_within_one_step() {
    let clock = Arc::new(TokioClock::new(t0()));
    let ca = FakeCa::new(clock.clone());
    ca.pretend_attested();
    ca.add_entry("e0", "/w/0", 1);
    ca.lock().down = true;
    let (m, handle) = manager(&ca, clock.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(m.run(stop_rx));

    // A long outage: the delays double from 1 s, then stay between 5 and 10 s.
    tokio::time::sleep(Duration::from_secs(300)).await;
    let attempts = ca.lock().sync_attempts.clone();
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] <= Duration::from_secs(1), "{gaps:?}");
    for w in gaps.windows(2) {
        assert!(
            w[1] >= w[0] || w[0] >= Duration::from_secs(5),
            "backoff grows until capped: {gaps:?}"
        );
    }
    assert!(
        gaps.iter().all(|g| *g <= Duration::from_secs(10)),
        "no retry waits longer than 10 s: {gaps:?}"
    );
    assert!(
        gaps[5..].iter().all(|g| *g >= Duration::from_secs(5)),
        "capped delays are not a tight loop: {gaps:?}"
    );
    assert!(handle.snapshot().svids.is_empty());

    // The CA comes back with a new entry: it reaches the cache within one
    // capped step (it took ~50 s with the old 60 s cap).
    let back = tokio::time::Instant::now();
    {
        let mut st = ca.lock();
        st.down = false;
    }
    ca.add_entry("e1", "/w/1", 2);
    let mut rx = handle.subscribe();
    tokio::time::timeout(Duration::from_secs(11), rx.wait_for(|s| s.svids.len() == 2))
        .await
        .expect("the recovered CA's entries are served within 11 s")
        .unwrap();
    assert!(
        back.elapsed() <= Duration::from_secs(10),
        "{:?}",
        back.elapsed()
    );

    // After that success the next outage starts again from the base delay.
    ca.lock().down = true;
    let down = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let after: Vec<_> = ca
        .lock()
        .sync_attempts
        .iter()
        .copied()
        .filter(|t| *t > down)
        .collect();
    assert!(after.len() >= 3, "{after:?}");
    assert!(
        after[1] - after[0] <= Duration::from_secs(1),
        "first retry after a success waits at most the 1 s base: {:?}",
        after[1] - after[0]
    );
    stop_tx.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn running_manager_rotates_on_its_own_before_expiry() {
    let clock = Arc::new(TokioClock::new(t0()));
    let ca = FakeCa::new(clock.clone());
    ca.pretend_attested();
    ca.add_entry("e0", "/w/0", 1);
    ca.lock().svid_ttl = Duration::from_secs(100_000); // longer than the sync interval matters
    let mut config = ManagerConfig::new(ca.td.clone());
    config.sync_interval = Duration::from_secs(3600);
    let (m, handle) = SvidManager::new(config, ca.clone(), clock.clone(), AgentMetrics::default());
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(m.run(stop_rx));
    let mut rx = handle.subscribe();
    rx.wait_for(|s| s.svids.len() == 1).await.unwrap();
    let first = rx.borrow().svids[0].serial.clone();
    rx.wait_for(|s| s.svids.first().is_some_and(|x| x.serial != first))
        .await
        .unwrap();
    let elapsed = meshid_runtime::clock::Clock::now(clock.as_ref())
        .duration_since(t0())
        .unwrap();
    assert!(
        elapsed >= Duration::from_secs(39_000) && elapsed <= Duration::from_secs(61_000),
        "rotated after {elapsed:?}"
    );
}

#[tokio::test]
async fn jwt_svids_are_cached_per_audience_until_half_life() {
    let clock = ManualClock::new(t0());
    let ca = FakeCa::new(Arc::new(clock.clone()));
    ca.pretend_attested();
    ca.add_entry("e0", "/w/0", 1);
    let (mut m, handle) = manager(&ca, Arc::new(clock.clone()));
    m.tick().await.unwrap();
    let entry = handle.snapshot().svids[0].entry.clone();
    let aud = vec!["svc-a".to_string()];

    let a = handle.mint_jwt_svid(&entry, &aud).await.unwrap();
    assert_eq!(a.spiffe_id, entry.spiffe_id);
    assert!(!format!("{a:?}").contains(&a.token), "token not in Debug");
    let b = handle.mint_jwt_svid(&entry, &aud).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(ca.lock().jwt_mints, 1);

    handle
        .mint_jwt_svid(&entry, &["svc-b".to_string()])
        .await
        .unwrap();
    assert_eq!(ca.lock().jwt_mints, 2, "another audience is another token");

    clock.set(t0() + Duration::from_secs(151)); // JWT TTL 300 s
    let c = handle.mint_jwt_svid(&entry, &aud).await.unwrap();
    assert_ne!(c.token, a.token);
    assert_eq!(ca.lock().jwt_mints, 3);

    assert!(handle.mint_jwt_svid(&entry, &[]).await.is_err());
}

/// The snapshot's selector index gives exactly what a scan of every SVID
/// would: entries with several selectors, callers with several selectors.
#[tokio::test]
async fn svids_for_matches_a_full_scan() {
    let clock = ManualClock::new(t0());
    let ca = FakeCa::new(Arc::new(clock.clone()));
    ca.pretend_attested();
    for i in 0..40u32 {
        ca.add_entry(&format!("e{i}"), &format!("/w/{i}"), i % 5);
    }
    {
        let mut st = ca.lock();
        for e in st.entries.iter_mut().step_by(2) {
            e.selectors.insert(
                0,
                meshid_proto::ca::Selector {
                    r#type: "unix".into(),
                    value: "gid:7".into(),
                },
            );
        }
    }
    let (mut m, handle) = manager(&ca, Arc::new(clock.clone()));
    m.tick().await.unwrap();
    let snap = handle.snapshot();
    assert_eq!(snap.svids.len(), 40);
    let now = clock.now_for_test();
    for uid in 0..6 {
        for with_gid in [false, true] {
            let mut caller = vec![Selector::parse(&format!("unix:uid:{uid}")).unwrap()];
            if with_gid {
                caller.push(Selector::parse("unix:gid:7").unwrap());
            }
            let mut want: Vec<String> = snap
                .svids
                .iter()
                .filter(|s| s.entry.selectors.iter().all(|r| caller.contains(r)))
                .map(|s| s.entry.id.clone())
                .collect();
            want.sort();
            let mut got: Vec<String> = snap
                .svids_for(&caller, now)
                .iter()
                .map(|s| s.entry.id.clone())
                .collect();
            got.sort();
            assert_eq!(got, want, "caller {caller:?}");
        }
    }
}
