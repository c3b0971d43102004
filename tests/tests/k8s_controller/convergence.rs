//! 500 pods in, 500 pods out, a SIGKILL in the middle.

use serde_json::json;

use super::support::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_follow_500_pods_through_a_crash() {
    let w = World::new().await;
    w.template("default", json!({}));
    let mut c = w.controller("controller-0", "");
    let uids = w.create_pods("web", 500, json!({"app": "web"}));
    w.converge_to_pods(&uids);
    assert_eq!(c.metric("meshid_k8s_entries_owned"), Some(500.0));

    // Delete them all and kill the controller while it deletes entries.
    w.delete_pods("web", 0..500);
    meshid_tests::eventually(
        "the controller deleting entries",
        super::support::CONVERGE,
        || (w.owned().len() < 500).then_some(()),
    );
    c.child.kill();
    let left = w.owned().len();
    println!("SIGKILLed with {left} of 500 entries left");

    // While it is down, 100 new pods arrive; then it starts again.
    let fresh = w.create_pods("api", 100, json!({"app": "api"}));
    let c = w.controller("controller-0", "");
    w.converge_to_pods(&fresh);
    let owned = w.owned();
    assert_eq!(owned.len(), 100, "no duplicates");
    let ids: std::collections::BTreeSet<_> =
        owned.iter().map(|e| e["spiffe_id"].to_string()).collect();
    assert_eq!(
        ids.len(),
        1,
        "one SPIFFE ID for the service account: {ids:?}"
    );
    assert!(
        owned
            .iter()
            .all(|e| e["parent_id"] == "spiffe://example.org/k8s-node/node-1")
    );
    assert!(c.metric("meshid_k8s_leader").is_some());
    // An operator's entry is never touched.
    w.ca.create_entry(
        "spiffe://example.org/operator",
        "spiffe://example.org/k8s-node/node-1",
        &["unix:uid:4242"],
    );
    w.delete_pods("api", 0..100);
    w.converge_to_pods(&[]);
    let all = w.ca.admin_json(&["entry", "list"]);
    let all = all["entries"].as_array().unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["spiffe_id"], "spiffe://example.org/operator");
}
