//! Re-issue on CA key rotation, against an in-memory CA that rotates its
//! root: a taint replaces every SVID at once, a retired key within the
//! spread, a CA without key state as before; the agent's own SVID follows,
//! and the bundle the sync brought is stored (by the attestor alone) so a
//! restarted agent trusts the new root.
#![allow(clippy::unwrap_used)]

#[path = "support/fake_ca.rs"]
mod fake_ca;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use fake_ca::{FakeCa, t0};
use meshid_agent::attest::{AttestConfig, Attestor, MaintainSignals, store};
use meshid_agent::cache::Snapshot;
use meshid_agent::config::JoinToken;
use meshid_agent::manager::{ManagerConfig, ManagerHandle, SvidManager};
use meshid_agent::metrics::AgentMetrics;
use meshid_identity::x509::authority_key_id;
use meshid_runtime::clock::{ManualClock, SharedClock, TokioClock};
use prometheus_client::registry::Registry;

const ENTRIES: u32 = 20;

/// A manager whose metrics are registered in the returned registry.
fn manager(ca: &Arc<FakeCa>, clock: SharedClock) -> (SvidManager, ManagerHandle, Registry) {
    let (m, h, registry, _) = manager_with_metrics(ca, clock);
    (m, h, registry)
}

fn manager_with_metrics(
    ca: &Arc<FakeCa>,
    clock: SharedClock,
) -> (SvidManager, ManagerHandle, Registry, AgentMetrics) {
    let mut registry = Registry::default();
    let metrics = AgentMetrics::register(&mut registry);
    let (m, h) = SvidManager::new(
        ManagerConfig::new(ca.td.clone()),
        ca.clone(),
        clock,
        metrics.clone(),
    );
    (m, h, registry, metrics)
}

fn with_entries(clock: SharedClock) -> Arc<FakeCa> {
    let ca = FakeCa::new(clock);
    ca.pretend_attested();
    ca.lock().page_size = 100;
    for i in 0..ENTRIES {
        ca.add_entry(&format!("e{i}"), &format!("/w/{i}"), i);
    }
    ca
}

/// A CA on a manual clock with entries, publishing its key as active.
fn keyed() -> (ManualClock, Arc<FakeCa>, Vec<u8>) {
    let clock = ManualClock::new(t0());
    let ca = with_entries(Arc::new(clock.clone()));
    let k1 = ca.key_id();
    ca.set_keys(&[&k1], &[], 60);
    (clock, ca, k1)
}

fn serials(s: &Snapshot) -> BTreeMap<String, String> {
    s.svids
        .iter()
        .map(|s| (s.entry.id.clone(), s.serial.clone()))
        .collect()
}

/// The key IDs that signed the served SVIDs.
fn signers(s: &Snapshot) -> BTreeSet<Vec<u8>> {
    s.svids
        .iter()
        .map(|s| authority_key_id(&s.chain[0]).unwrap())
        .collect()
}

/// `meshid_agent_svids_reissued_total{reason}` as exposed.
fn reissued(registry: &Registry, reason: &str) -> u64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    let series = format!("meshid_agent_svids_reissued_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn a_tainted_key_is_replaced_at_once_and_only_once() {
    let (clock, ca, k1) = keyed();
    let (mut m, handle, registry) = manager(&ca, Arc::new(clock.clone()));
    m.tick().await.unwrap();
    let before = serials(&handle.snapshot());
    assert_eq!(signers(&handle.snapshot()), BTreeSet::from([k1.clone()]));

    // Suspected compromise: a new root signs, the old key is tainted.
    ca.rotate();
    let k2 = ca.key_id();
    ca.set_keys(&[&k2], &[&k1], 3600);
    m.tick().await.unwrap();
    let snap = handle.snapshot();
    let after = serials(&snap);
    assert!(
        before.iter().all(|(id, s)| after[id] != *s),
        "every SVID re-issued in the first pass, not within the 1 h spread"
    );
    assert_eq!(signers(&snap), BTreeSet::from([k2]));
    assert_eq!(snap.bundles.get(&ca.td).unwrap().x509_authorities.len(), 2);
    assert_eq!(reissued(&registry, "taint"), u64::from(ENTRIES));
    assert_eq!(reissued(&registry, "rotation"), 0);

    // The same key state again: nothing more to do.
    m.tick().await.unwrap();
    assert_eq!(serials(&handle.snapshot()), after);
    assert_eq!(ca.lock().batches.len(), 2, "one batch each pass, no third");
}

#[tokio::test]
async fn svids_of_a_retired_key_are_reissued_spread_over_the_spread() {
    let clock = ManualClock::new(t0());
    let ca = with_entries(Arc::new(clock.clone()));
    let (mut m, handle, registry) = manager(&ca, Arc::new(clock.clone()));
    m.tick().await.unwrap();
    let first = serials(&handle.snapshot());

    ca.rotate();
    let k2 = ca.key_id();
    ca.set_keys(&[&k2, b"another-replica"], &[], 60);
    let mut reissued_at: BTreeMap<String, u64> = BTreeMap::new();
    for step in (0..=70).step_by(5) {
        clock.set(t0() + Duration::from_secs(step));
        m.tick().await.unwrap();
        for (id, serial) in serials(&handle.snapshot()) {
            if first[&id] != serial {
                reissued_at.entry(id).or_insert(step);
            }
        }
    }
    assert_eq!(reissued_at.len(), ENTRIES as usize, "{reissued_at:?}");
    assert!(
        reissued_at.values().all(|at| (5..=60).contains(at)),
        "within the 60 s spread, none in the pass that saw the keys: {reissued_at:?}"
    );
    let distinct: BTreeSet<_> = reissued_at.values().collect();
    assert!(distinct.len() > 1, "spread out: {reissued_at:?}");
    assert_eq!(signers(&handle.snapshot()), BTreeSet::from([k2]));
    assert_eq!(reissued(&registry, "rotation"), u64::from(ENTRIES));
    // Each SVID was re-issued once: one serial change per entry.
    assert_eq!(
        ca.lock().batches.iter().sum::<usize>(),
        2 * ENTRIES as usize
    );
}

#[tokio::test]
async fn a_ca_without_key_state_changes_the_bundle_but_reissues_nothing() {
    let clock = ManualClock::new(t0());
    let ca = with_entries(Arc::new(clock.clone()));
    let (mut m, handle, registry) = manager(&ca, Arc::new(clock.clone()));
    m.tick().await.unwrap();
    let first = serials(&handle.snapshot());
    let gen1 = handle.snapshot().generation;

    ca.rotate();
    m.tick().await.unwrap();
    let snap = handle.snapshot();
    assert_eq!(serials(&snap), first);
    assert!(snap.generation > gen1, "the new bundle was published");
    assert_eq!(snap.bundles.get(&ca.td).unwrap().x509_authorities.len(), 2);
    assert_eq!(
        reissued(&registry, "rotation") + reissued(&registry, "taint"),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn the_agent_svid_follows_a_taint_and_the_stored_bundle_outlives_a_stale_bootstrap() {
    let clock: SharedClock = Arc::new(TokioClock::new(t0()));
    let ca = with_entries(clock.clone());
    ca.lock().tokens.insert("tok".into());
    let k1 = ca.key_id();
    ca.set_keys(&[&k1], &[], 60);
    let bootstrap = ca.trust_bundle();
    let dir = tempfile::tempdir().unwrap();
    let attest_config = |token: Option<&str>| AttestConfig {
        trust_domain: ca.td.clone(),
        data_dir: dir.path().to_owned(),
        join_token: token.map(JoinToken::new),
        k8s_psat: None,
        bootstrap_bundle: Some(bootstrap.clone()),
        renew_fraction: 0.5,
    };
    let mut attestor = Attestor::new(attest_config(Some("tok")), ca.clone(), clock.clone());
    let (mut m, _handle, registry, metrics) = manager_with_metrics(&ca, clock.clone());
    attestor.set_metrics(metrics);
    let id = attestor.start().await.unwrap();
    assert_eq!(authority_key_id(&id.chain[0]), Some(k1.clone()));

    let (trust_tx, trust) = tokio::sync::watch::channel(None);
    m.on_trust(trust_tx);
    let (id_tx, mut ids) = tokio::sync::watch::channel(id.clone());
    let (_stop_tx, shutdown) = tokio::sync::watch::channel(false);
    let signals = MaintainSignals {
        kick: Arc::new(tokio::sync::Notify::new()),
        trust,
        shutdown,
    };
    tokio::spawn(async move { attestor.maintain(id, id_tx, signals).await });
    m.tick().await.unwrap();

    ca.rotate();
    let k2 = ca.key_id();
    ca.set_keys(&[&k2], &[&k1], 3600);
    m.tick().await.unwrap();
    // The attestor stores the new bundle, then renews at once.
    tokio::time::timeout(
        Duration::from_secs(5),
        ids.wait_for(|i| authority_key_id(&i.chain[0]) == Some(k2.clone())),
    )
    .await
    .expect("the agent SVID was re-issued under the new key at once")
    .unwrap();
    assert_eq!(ca.lock().renewals, 1);
    let stored = store::load(dir.path(), &ca.td).unwrap().unwrap();
    assert_eq!(
        stored.bundle.x509_authorities,
        ca.trust_bundle().x509_authorities,
        "both roots stored"
    );
    assert_eq!(stored.bundle.sequence, 2);
    assert_eq!(authority_key_id(&stored.chain[0]), Some(k2));
    let names: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            store::KEY_FILE.to_owned(),
            store::SVID_FILE.to_owned(),
            store::BUNDLE_FILE.to_owned()
        ]),
        "no temporary file left behind"
    );

    // A restart with no token and the pre-rotation bootstrap bundle: the
    // stored SVID (signed by the new root) verifies against the stored
    // bundle, so the agent comes back without attesting.
    let restarted = Attestor::new(attest_config(None), ca.clone(), clock.clone());
    let again = restarted.start().await.unwrap();
    assert_eq!(again.chain, stored.chain);
    assert_eq!(ca.lock().attests, 1);
    assert_eq!(
        reissued(&registry, "taint"),
        u64::from(ENTRIES) + 1,
        "the workloads' SVIDs and the agent's own"
    );
}

#[tokio::test]
async fn cached_jwt_svids_are_dropped_when_the_ca_key_state_changes() {
    let (clock, ca, k1) = keyed();
    let (mut m, handle, _) = manager(&ca, Arc::new(clock.clone()));
    m.tick().await.unwrap();
    let entry = handle.snapshot().svids[0].entry.clone();
    let aud = vec!["db".to_owned()];
    let first = handle.mint_jwt_svid(&entry, &aud).await.unwrap();
    assert_eq!(handle.mint_jwt_svid(&entry, &aud).await.unwrap(), first);
    m.tick().await.unwrap();
    assert_eq!(
        handle.mint_jwt_svid(&entry, &aud).await.unwrap(),
        first,
        "an unchanged sync keeps the cache"
    );
    assert_eq!(ca.lock().jwt_mints, 1);

    ca.rotate();
    ca.set_keys(&[&ca.key_id()], &[&k1], 60);
    m.tick().await.unwrap();
    let second = handle.mint_jwt_svid(&entry, &aud).await.unwrap();
    assert_ne!(second, first, "minted again after the taint");
    assert_eq!(ca.lock().jwt_mints, 2);
}
