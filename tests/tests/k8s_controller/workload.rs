//! The controller's entry served by a real agent to a real process.

use serde_json::json;

use super::support::{CONVERGE, World};
use meshid_tests::{TestAgent, current_uid, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_agent_serves_the_entry_the_controller_wrote() {
    let w = World::new().await;
    // The agent of node-1: a join token whose node alias is the parent the
    // controller's parent_id_template gives pods on node-1.
    let alias = "spiffe://example.org/k8s-node/node-1";
    let v =
        w.ca.admin_json(&["token", "generate", "--spiffe-id", alias]);
    let secret = v["token"].as_str().unwrap().to_owned();
    let agent_dir = w.dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let mut agent = TestAgent::builder(&w.ca, &agent_dir)
        .join_token(&secret)
        .start(w.dir.path());
    // Pods are told apart by uid here (no k8s workload attestor before
    // issue #14): this process's uid.
    w.template(
        "web",
        json!({"workloadSelectorTemplates": [format!("unix:uid:{}", current_uid())]}),
    );
    let _c = w.controller("controller-0", "pod_selectors = []");
    w.create_pods("web", 1, json!({"app": "web"}));
    eventually("the controller's entry", CONVERGE, || {
        (w.owned().len() == 1).then_some(())
    });
    agent.wait_for_svid(Some("spiffe://example.org/ns/shop/sa/web"));
}
