//! k8s_psat node attestation end to end: the real `meshid ca serve`
//! validates the agent's projected service-account token through the
//! [`FakeApiServer`]'s TokenReview and looks up its pod and node; the real
//! `meshid agent run` reads the token from a file. The agent's ID is
//! `spiffe://<td>/meshid/agent/k8s_psat/<cluster>/<node-uid>`, stable across
//! a restarted pod; a token for another audience is refused with the CA's
//! reason; the CA's API calls stay inside `meshid_k8s::rbac::CA_ATTESTOR`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use meshid_tests::kube::{FakeApiServer, SaClaims};
use meshid_tests::{TestAgent, TestCa, current_uid, eventually_every, wait_for_line};
use serde_json::{Value, json};

const CLUSTER: &str = "prod";
const NAMESPACE: &str = "meshid-system";
const SERVICE_ACCOUNT: &str = "meshid-agent";
const NODE: &str = "node-1";
/// The bearer token of the CA's kubeconfig (the request log's key).
const CA_TOKEN: &str = "meshid-ca";
/// How long an attestation (or its refusal) may take.
const WAIT: Duration = Duration::from_secs(30);

/// A CA with the `prod` cluster on the fake API server, its namespace and
/// node; the node's uid.
struct Cluster {
    api: FakeApiServer,
    dir: tempfile::TempDir,
    ca: TestCa,
    node_uid: String,
}

impl Cluster {
    async fn start() -> Self {
        let api = FakeApiServer::start().await;
        let dir = meshid_tests::tempdir();
        let kubeconfig = dir.path().join("prod.kubeconfig");
        api.write_kubeconfig(&kubeconfig, CA_TOKEN);
        api.create(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        )
        .expect("namespace");
        let node = api
            .create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}))
            .expect("node");
        let ca = TestCa::builder(dir.path().join("ca"), dir.path())
            .config(&format!(
                "[node_attestor.k8s_psat.clusters.{CLUSTER}]\n\
                 service_account_allow_list = [\"{NAMESPACE}:{SERVICE_ACCOUNT}\"]\n\
                 kubeconfig = {:?}\n",
                kubeconfig.display().to_string()
            ))
            .start();
        Self {
            node_uid: uid(&node),
            api,
            dir,
            ca,
        }
    }

    /// The ID an agent on the node gets.
    fn agent_id(&self) -> String {
        format!(
            "spiffe://{}/meshid/agent/k8s_psat/{CLUSTER}/{}",
            self.ca.trust_domain(),
            self.node_uid
        )
    }

    /// Creates the agent pod `name` on the node; its uid.
    fn create_pod(&self, name: &str) -> String {
        let pod = self
            .api
            .create(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"nodeName": NODE, "serviceAccountName": SERVICE_ACCOUNT,
                         "containers": [{"name": "agent", "image": "meshid"}]},
            }))
            .expect("pod");
        uid(&pod)
    }

    /// Writes a fresh projected token for the pod, for `audience`, to
    /// `<agent dir>/token`; its path.
    fn write_token(&self, agent_dir: &Path, pod: &str, pod_uid: &str, audience: &str) -> PathBuf {
        let claims = SaClaims::bound(
            NAMESPACE,
            SERVICE_ACCOUNT,
            pod,
            pod_uid,
            Some((NODE, &self.node_uid)),
            audience,
            Duration::from_secs(600),
        );
        let path = agent_dir.join("token");
        std::fs::write(&path, self.api.sa_issuer().mint(&claims)).expect("write token");
        path
    }

    /// Starts an agent in `<tmp>/<name>` attesting with k8s_psat from
    /// `token`.
    fn start_agent(&self, agent_dir: &Path, token: &Path) -> TestAgent {
        TestAgent::builder(&self.ca, agent_dir)
            .extra(&format!(
                "[node_attestor.k8s_psat]\ncluster = {CLUSTER:?}\ntoken_path = {:?}\n",
                token.display().to_string()
            ))
            .start(self.dir.path())
    }

    /// The CA's view of the agent `id` (`meshid agent list`), if listed.
    fn listed(&self, id: &str) -> Option<Value> {
        let agents = self.ca.admin_json(&["agent", "list"]);
        agents["agents"]
            .as_array()?
            .iter()
            .find(|a| a["spiffe_id"] == id)
            .cloned()
    }

    /// Waits until the CA lists the agent `id` and `pred` holds for it.
    fn wait_listed(&self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        eventually_every(
            &format!("{id} in meshid agent list"),
            WAIT,
            Duration::from_millis(200),
            || self.listed(id).filter(|a| pred(a)),
        )
    }
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"]
        .as_str()
        .expect("metadata.uid")
        .to_owned()
}

fn agent_dir(cluster: &Cluster, name: &str) -> PathBuf {
    let dir = cluster.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("agent dir");
    dir
}

fn selectors(agent: &Value) -> BTreeSet<String> {
    agent["selectors"]
        .as_array()
        .expect("selectors")
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_attests_with_its_projected_token_and_keeps_its_id_across_pods() {
    let cluster = Cluster::start().await;
    let id = cluster.agent_id();
    let dir = agent_dir(&cluster, "agent");

    // 1. First pod: attests as the node.
    let pod_uid = cluster.create_pod("meshid-agent-a");
    let token = cluster.write_token(&dir, "meshid-agent-a", &pod_uid, "meshid-ca");
    let mut agent = cluster.start_agent(&dir, &token);
    let listed = cluster.wait_listed(&id, |_| true);
    assert_eq!(listed["attestation_type"], "k8s_psat", "{listed}");
    let sel = selectors(&listed);
    for want in [
        format!("k8s_psat:cluster:{CLUSTER}"),
        format!("k8s_psat:agent_ns:{NAMESPACE}"),
        format!("k8s_psat:agent_sa:{SERVICE_ACCOUNT}"),
        format!("k8s_psat:agent_pod_uid:{pod_uid}"),
        format!("k8s_psat:agent_node_name:{NODE}"),
        format!("k8s_psat:agent_node_uid:{}", cluster.node_uid),
    ] {
        assert!(sel.contains(&want), "no {want} in {sel:?}");
    }
    let td = cluster.ca.trust_domain().to_owned();
    let workload = format!("spiffe://{td}/workload");
    cluster
        .ca
        .create_entry(&workload, &id, &[&format!("unix:uid:{}", current_uid())]);
    agent.wait_for_svid(Some(&workload));

    // 2. The pod is replaced: new pod uid, no stored SVID, fresh token.
    let status = agent.child.terminate(Duration::from_secs(20));
    assert!(status.success(), "agent exited with {status}");
    std::fs::remove_dir_all(&agent.data_dir).expect("wipe the agent's data dir");
    cluster
        .api
        .delete("pods", NAMESPACE, "meshid-agent-a")
        .expect("delete pod");
    let new_uid = cluster.create_pod("meshid-agent-b");
    assert_ne!(new_uid, pod_uid);
    let token = cluster.write_token(&dir, "meshid-agent-b", &new_uid, "meshid-ca");
    let mut agent = cluster.start_agent(&dir, &token);
    agent.wait_for_svid(Some(&workload));
    let new_pod = format!("k8s_psat:agent_pod_uid:{new_uid}");
    let listed = cluster.wait_listed(&id, |a| selectors(a).contains(&new_pod));
    assert_eq!(listed["spiffe_id"], id.as_str());
    let agents = cluster.ca.admin_json(&["agent", "list"]);
    let k8s: Vec<&Value> = agents["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter(|a| a["attestation_type"] == "k8s_psat")
        .collect();
    assert_eq!(k8s.len(), 1, "one agent per node: {agents}");
    let log = agent.child.log();
    assert!(log.contains(&id), "the agent log names its ID:\n{log}");

    // 4. The CA's API calls: exactly the CA_ATTESTOR rules.
    let seen: BTreeSet<(String, String, String)> = cluster
        .api
        .requests()
        .into_iter()
        .filter(|r| r.token == CA_TOKEN)
        .map(|r| (r.verb.to_owned(), r.group, r.resource))
        .collect();
    let allowed: BTreeSet<(String, String, String)> = meshid_k8s::rbac::CA_ATTESTOR
        .iter()
        .flat_map(|rule| {
            rule.verbs.iter().map(|v| {
                (
                    (*v).to_owned(),
                    rule.api_group.to_owned(),
                    rule.resource.to_owned(),
                )
            })
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = [
        ("create", "authentication.k8s.io", "tokenreviews"),
        ("get", "", "pods"),
        ("get", "", "nodes"),
    ]
    .into_iter()
    .map(|(v, g, r)| (v.to_owned(), g.to_owned(), r.to_owned()))
    .collect();
    assert_eq!(seen, expected, "the CA's requests");
    assert_eq!(allowed, expected, "meshid_k8s::rbac::CA_ATTESTOR");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_for_another_audience_is_refused_with_the_cas_reason() {
    let cluster = Cluster::start().await;
    let dir = agent_dir(&cluster, "agent");
    let pod_uid = cluster.create_pod("meshid-agent-a");
    let token = cluster.write_token(&dir, "meshid-agent-a", &pod_uid, "vault");
    let mut agent = cluster.start_agent(&dir, &token);
    // The CA's message (ca/src/node_attestor/k8s_psat/payload.rs).
    let line = wait_for_line(
        agent.child.log_file(),
        "token is not for audience meshid-ca",
        WAIT,
    )
    .await;
    assert!(line.contains("vault"), "names the token's audience: {line}");
    assert!(
        agent.child.is_running(),
        "a refusal is retried:\n{}",
        agent.child.log()
    );
    let fetched = cluster.dir.path().join("fetched");
    assert!(agent.served_leaves(&fetched).is_empty(), "serves no SVID");
    let agents = cluster.ca.admin_json(&["agent", "list"]);
    assert!(
        agents["agents"].as_array().is_none_or(Vec::is_empty),
        "no agent attested: {agents}"
    );
}
