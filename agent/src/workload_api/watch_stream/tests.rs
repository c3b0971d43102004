//! Which publishes make a stream rebuild and send, counted at the builder.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use meshid_identity::{BundleSet, PrivateKey, Selector, SpiffeId, TrustBundle, TrustDomain};
use tokio::sync::watch;
use tokio_stream::StreamExt;

use super::{Build, watch_stream};
use crate::attestor::ProcessIdentity;
use crate::cache::{CachedSvid, EntryInfo, Snapshot};
use crate::workload_api::{Caller, ShutdownSignal};
use meshid_runtime::clock::SystemClock;

fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

/// An SVID for entry `entry_id` (selector `unix:uid:<uid>`) whose serial
/// names it; the chain is never looked at here.
fn svid(entry_id: &str, uid: u32, serial: &str) -> Arc<CachedSvid> {
    let now = SystemTime::now();
    Arc::new(CachedSvid {
        entry: EntryInfo {
            id: entry_id.into(),
            spiffe_id: SpiffeId::parse(&format!("spiffe://example.org/{entry_id}")).unwrap(),
            selectors: vec![Selector::new("unix", &format!("uid:{uid}")).unwrap()],
            federates_with: vec![],
            hint: String::new(),
            revision: 1,
            dns_names: vec![],
        },
        chain: vec![],
        key: PrivateKey::generate_p256().unwrap(),
        not_before: now - Duration::from_secs(60),
        not_after: now + Duration::from_secs(3600),
        serial: serial.into(),
    })
}

/// A snapshot with a fresh (but equal) bundle set each time, as a sync
/// that changed nothing produces.
fn snapshot(svids: Vec<Arc<CachedSvid>>, generation: u64) -> Arc<Snapshot> {
    let bundles: BundleSet = [TrustBundle::new(td())].into_iter().collect();
    Arc::new(Snapshot::new(
        Arc::new(bundles),
        Some(td()),
        svids,
        generation,
    ))
}

/// A builder listing the caller's SVID serials, counting its calls.
fn counting_build(calls: &Arc<AtomicUsize>) -> Build<Vec<String>> {
    let calls = Arc::clone(calls);
    Box::new(move |_snap: &Snapshot, svids: &[Arc<CachedSvid>]| {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(svids.iter().map(|s| s.serial.clone()).collect())
    })
}

/// Lets every task run until it waits (time is paused: a sleep returns
/// only once the runtime is otherwise idle).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test(start_paused = true)]
async fn only_a_publish_that_changes_the_callers_view_is_built_and_sent() {
    let mine = svid("api", 1000, "a1");
    let theirs = svid("db", 2000, "b1");
    let (tx, rx) = watch::channel(snapshot(vec![mine.clone(), theirs], 1));
    let caller = Caller {
        process: ProcessIdentity::capture(
            Path::new("/proc"),
            i32::try_from(std::process::id()).unwrap(),
            None,
        )
        .unwrap(),
        selectors: vec![Selector::new("unix", "uid:1000").unwrap()],
    };
    let (_shutdown, stop) = ShutdownSignal::new(std::future::pending());
    let calls = Arc::new(AtomicUsize::new(0));
    let mut stream = watch_stream(
        caller,
        rx,
        Arc::new(SystemClock),
        stop,
        counting_build(&calls),
    )
    .unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), ["a1"]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Another workload's SVID rotates; bundles arrive as a new but equal
    // set: this caller's view is unchanged, so nothing is built or sent.
    tx.send(snapshot(vec![mine.clone(), svid("db", 2000, "b2")], 2))
        .unwrap();
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "unchanged view rebuilt");

    // A changed bundle set is rebuilt (it is in every message).
    let mut changed: BundleSet = [TrustBundle::new(td())].into_iter().collect();
    changed.insert(TrustBundle::new(TrustDomain::new("partner.org").unwrap()));
    tx.send(Arc::new(Snapshot::new(
        Arc::new(changed),
        Some(td()),
        vec![mine.clone()],
        3,
    )))
    .unwrap();
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "bundle change not rebuilt");

    // This caller's SVID rotates: built and sent, and it is the next
    // message (the publishes before sent nothing).
    tx.send(snapshot(vec![svid("api", 1000, "a2")], 4)).unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), ["a2"]);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
