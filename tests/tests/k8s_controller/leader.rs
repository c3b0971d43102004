//! Two controllers: one Lease, one writer.

use std::time::{Duration, Instant};

use serde_json::json;

use super::support::{CONVERGE, LEASE, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_writes_and_the_other_takes_over() {
    let w = World::new().await;
    w.template("default", json!({}));
    let mut a = w.controller("controller-a", "");
    let holder = meshid_tests::eventually("a Lease holder", CONVERGE, || w.lease_holder());
    assert_eq!(holder, "controller-a");
    let mut b = w.controller("controller-b", "");
    let uids = w.create_pods("web", 20, json!({}));
    w.converge_to_pods(&uids);
    // b is up and following (its watches listed everything).
    meshid_tests::eventually("controller-b following", CONVERGE, || {
        (b.metric("meshid_k8s_leader") == Some(0.0)).then_some(())
    });
    assert_eq!(w.lease_holder().as_deref(), Some("controller-a"));
    assert!(!w.writes_by("controller-a").is_empty());
    assert_eq!(
        w.writes_by("controller-b"),
        Vec::<String>::new(),
        "the follower wrote"
    );

    a.child.kill();
    let killed = Instant::now();
    let holder = meshid_tests::eventually("controller-b taking the Lease", CONVERGE, || {
        w.lease_holder().filter(|h| h == "controller-b")
    });
    let took = killed.elapsed();
    println!(
        "{holder} took the Lease {took:?} after controller-a was killed (lease_duration {LEASE:?})"
    );
    // Within the lease duration plus a retry period and generous slack for
    // a loaded machine.
    assert!(took < LEASE + Duration::from_secs(7), "took {took:?}");
    let more = w.create_pods("more", 5, json!({}));
    let mut all = uids.clone();
    all.extend(more);
    w.converge_to_pods(&all);
    assert!(!w.writes_by("controller-b").is_empty());
    assert_eq!(b.metric("meshid_k8s_leader"), Some(1.0));
    b.child.terminate(Duration::from_secs(10));
    // A clean stop gives the Lease up.
    assert_eq!(w.lease_holder(), None);
}
