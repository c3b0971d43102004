//! The world of the controller scenarios: a real CA, the fake API server
//! with a cluster in it (namespaces, a node), and `meshid k8s controller
//! run` processes, each with its own bearer token so the request log tells
//! them apart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use meshid_tests::kube::FakeApiServer;
use meshid_tests::process::{Child, Cmd};
use meshid_tests::{TestCa, eventually, free_port, tempdir};
use serde_json::{Value, json};

/// The controller's cluster name; its entries are owned `k8s/demo`.
pub const OWNER: &str = "k8s/demo";
/// The controllers' `lease_duration` (renew_deadline 3s, retry_period
/// 500ms: room for a loaded machine to renew in time).
pub const LEASE: Duration = Duration::from_secs(5);
/// How long convergence may take on a loaded CI machine.
pub const CONVERGE: Duration = Duration::from_secs(90);

/// A CA, a fake cluster, and a place for controllers.
pub struct World {
    pub dir: tempfile::TempDir,
    pub ca: TestCa,
    pub api: FakeApiServer,
}

/// One controller process.
pub struct Controller {
    pub child: Child,
    pub ops_port: u16,
}

impl World {
    /// A CA and a cluster with namespaces `meshid-system`, `shop`,
    /// `kube-system` and the node `node-1`.
    pub async fn new() -> Self {
        let dir = tempdir();
        let ca = TestCa::builder(dir.path().join("ca"), dir.path()).start();
        let api = FakeApiServer::start().await;
        for ns in ["meshid-system", "shop", "kube-system"] {
            api.create(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}}))
                .unwrap();
        }
        api.create(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}}}))
            .unwrap();
        Self { dir, ca, api }
    }

    /// Starts `meshid k8s controller run` as `token` (also its Lease
    /// identity) with `extra` TOML after the common settings.
    pub fn controller(&self, token: &str, extra: &str) -> Controller {
        let kubeconfig = self.dir.path().join(format!("{token}.kubeconfig"));
        self.api.write_kubeconfig(&kubeconfig, token);
        let ops_port = free_port();
        let config = self.dir.path().join(format!("{token}.toml"));
        let text = format!(
            "cluster_name = \"demo\"\ntrust_domain = \"example.org\"\n\
             ca_admin_socket = {sock:?}\n\
             parent_id_template = \"spiffe://{{{{.TrustDomain}}}}/k8s-node/{{{{.NodeName}}}}\"\n\
             ops_listen = \"127.0.0.1:{ops_port}\"\nkubeconfig = {kc:?}\nbundle_refresh = \"500ms\"\n\
             {extra}\n\
             [leader_election]\nidentity = {token:?}\nlease_duration = \"5s\"\n\
             renew_deadline = \"3s\"\nretry_period = \"500ms\"\n",
            sock = path(&self.ca.admin_socket),
            kc = path(&kubeconfig),
        );
        std::fs::write(&config, text).unwrap();
        let child = Cmd::meshid()
            .args(["k8s", "controller", "run", "--config"])
            .args([&config])
            .env("RUST_LOG", "info")
            .spawn(self.dir.path());
        Controller { child, ops_port }
    }

    /// The entries owned by the controller, as `meshid entry list` prints
    /// them. The list must never fail, even while the controller deletes
    /// entries (the CA reads an entry and its selectors in one snapshot).
    pub fn owned(&self) -> Vec<Value> {
        let out = Cmd::meshid()
            .args([
                "entry",
                "list",
                "--owner",
                OWNER,
                "--output",
                "json",
                "--admin-socket",
            ])
            .args([&self.ca.admin_socket])
            .output();
        assert!(
            out.status.success(),
            "meshid entry list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("entry list prints JSON");
        v["entries"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the owned entries' `pod-uid` selectors are exactly
    /// `uids` (sorted), with no duplicate entry.
    pub fn converge_to_pods(&self, uids: &[String]) {
        let mut want: Vec<String> = uids.iter().map(|u| format!("k8s:pod-uid:{u}")).collect();
        want.sort();
        eventually(
            &format!("{} owned entries, one per pod", want.len()),
            CONVERGE,
            || {
                let mut have: Vec<String> = self
                    .owned()
                    .iter()
                    .filter_map(|e| {
                        e["selectors"]
                            .as_array()?
                            .iter()
                            .filter_map(Value::as_str)
                            .find(|s| s.starts_with("k8s:pod-uid:"))
                            .map(str::to_owned)
                    })
                    .collect();
                have.sort();
                (have == want).then_some(())
            },
        );
    }

    /// Creates `count` running pods `<prefix>-<i>` in `shop` on `node-1`;
    /// their UIDs.
    pub fn create_pods(&self, prefix: &str, count: usize, labels: Value) -> Vec<String> {
        (0..count)
            .map(|i| {
                let pod = self
                    .api
                    .create(json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": format!("{prefix}-{i}"), "namespace": "shop", "labels": labels},
                        "spec": {"nodeName": "node-1", "serviceAccountName": "web",
                                 "containers": [{"name": "app", "image": "app:1"}]},
                        "status": {"phase": "Running"}
                    }))
                    .unwrap();
                pod["metadata"]["uid"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    /// Deletes the pods `<prefix>-<i>` for `i` in `range`.
    pub fn delete_pods(&self, prefix: &str, range: std::ops::Range<usize>) {
        for i in range {
            self.api
                .delete("pods", "shop", &format!("{prefix}-{i}"))
                .unwrap();
        }
    }

    /// A `ClusterIdentityTemplate` named `name` with `spec`.
    pub fn template(&self, name: &str, spec: Value) {
        self.api
            .apply(
                json!({"apiVersion": "meshid.io/v1alpha1", "kind": "ClusterIdentityTemplate",
                "metadata": {"name": name}, "spec": spec}),
            )
            .unwrap();
    }

    /// The Lease's holder.
    pub fn lease_holder(&self) -> Option<String> {
        let lease = self
            .api
            .get("leases", "meshid-system", "meshid-controller")?;
        lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
    }

    /// Writes (create, update, patch, delete) by `token` outside leader
    /// election.
    pub fn writes_by(&self, token: &str) -> Vec<String> {
        self.api
            .requests()
            .into_iter()
            .filter(|r| r.token == token && r.resource != "leases")
            .filter(|r| matches!(r.verb, "create" | "update" | "patch" | "delete"))
            .map(|r| {
                format!(
                    "{} {}/{} {}/{}",
                    r.verb, r.group, r.resource, r.namespace, r.name
                )
            })
            .collect()
    }
}

impl Controller {
    /// A metric's value on its ops endpoint (first matching series).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = meshid_tests::http::http(self.ops_port, "GET", "/metrics");
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

fn path(p: &Path) -> String {
    PathBuf::from(p).display().to_string()
}
