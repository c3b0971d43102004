//! A CA with `k8s_psat` clusters whose API is a [`FakeApiServer`] (its
//! TokenReview verifies real signed service-account JWTs), and agents
//! attesting over the node API.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use meshid_ca::config::{K8sPsatCluster, K8sPsatConfig, NodeAttestorConfig};
use meshid_ca::server::CaServer;
use meshid_identity::{PrivateKey, TrustBundle};
use meshid_proto::ca::AttestRequest;
use meshid_tests::kube::{FakeApiServer, SaClaims};
use serde_json::{Value, json};
use tonic::{Code, Status};

use super::server::{self, Agent};

/// The agents' namespace and service account, and the audience.
pub const NS: &str = "meshid-system";
pub const SA: &str = "meshid-agent";
pub const AUD: &str = "meshid-ca";
/// The node label key the clusters allow.
pub const ZONE: &str = "topology.kubernetes.io/zone";
/// A token's lifetime.
pub const TTL: Duration = Duration::from_secs(600);

/// One fake cluster and the kubeconfig of the CA's access to it.
pub struct Cluster {
    pub api: FakeApiServer,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    /// A fake API server with the agents' namespace.
    pub async fn start(dir: &Path, name: &str) -> Self {
        let api = FakeApiServer::start().await;
        api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
            .unwrap();
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        api.write_kubeconfig(&kubeconfig, &format!("meshid-ca-{name}"));
        Self { api, kubeconfig }
    }

    /// Creates a node (with a zone label) and returns its uid.
    pub fn node(&self, name: &str, zone: &str) -> String {
        let node = self
            .api
            .create(json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {ZONE: zone, "secret-label": "x"}},
            }))
            .unwrap();
        uid(&node)
    }

    /// Creates an agent pod on `node` and returns its uid.
    pub fn pod(&self, name: &str, node: &str) -> String {
        let pod = self
            .api
            .create(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"nodeName": node, "serviceAccountName": SA,
                         "containers": [{"name": "agent", "image": "meshid:dev"}]},
            }))
            .unwrap();
        uid(&pod)
    }

    /// Claims of a token of the agent pod `pod`/`pod_uid`, bound to `node`.
    pub fn claims(&self, pod: &str, pod_uid: &str, node: Option<(&str, &str)>) -> SaClaims {
        SaClaims::bound(NS, SA, pod, pod_uid, node, AUD, TTL)
    }

    /// A token signed by the cluster.
    pub fn mint(&self, claims: &SaClaims) -> String {
        self.api.sa_issuer().mint(claims)
    }

    /// The CA settings for this cluster (TokenReview, zone label allowed).
    pub fn settings(&self) -> K8sPsatCluster {
        K8sPsatCluster {
            kubeconfig: Some(self.kubeconfig.clone()),
            allowed_node_label_keys: vec![ZONE.into()],
            ..K8sPsatCluster::token_review(&[&format!("{NS}:{SA}")])
        }
    }
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"].as_str().unwrap().to_owned()
}

/// A running CA and the temp dir holding its state.
pub struct Ca {
    pub server: CaServer,
    pub _dir: tempfile::TempDir,
}

impl Ca {
    /// A CA attesting agents of `clusters`.
    pub async fn start(clusters: Vec<(&str, K8sPsatCluster)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = meshid_ca::config::CaConfig {
            node_attestor: NodeAttestorConfig {
                k8s_psat: Some(K8sPsatConfig {
                    clusters: clusters
                        .into_iter()
                        .map(|(n, c)| (n.to_owned(), c))
                        .collect(),
                }),
            },
            ..server::config(dir.path())
        };
        Self {
            server: server::start(cfg).await,
            _dir: dir,
        }
    }

    /// The bundle the CA serves.
    pub fn bundle(&self) -> TrustBundle {
        self.server.authority.bundle().as_ref().clone()
    }

    /// Attests with the raw payload `payload`.
    pub async fn attest_raw(&self, payload: Vec<u8>) -> Result<Agent, Status> {
        let key = PrivateKey::generate_p256().unwrap();
        let svid = meshid_tests::node_client(self.server.node_addr, &self.bundle(), None)
            .await
            .attest(AttestRequest {
                attestation_type: "k8s_psat".into(),
                payload,
                csr: meshid_tests::node::csr(&key),
            })
            .await?
            .into_inner()
            .svid
            .unwrap();
        Ok(Agent::from_svid(key, svid))
    }

    /// Attests as an agent of `cluster` with `token`.
    pub async fn attest(&self, cluster: &str, token: &str) -> Result<Agent, Status> {
        let payload = serde_json::to_vec(&json!({"cluster": cluster, "token": token})).unwrap();
        self.attest_raw(payload).await
    }

    /// The selectors the CA stored for an agent.
    pub async fn selectors(&self, agent: &Agent) -> Vec<String> {
        let stored = self
            .server
            .store
            .get_agent(&agent.id)
            .await
            .unwrap()
            .unwrap();
        let mut s: Vec<String> = stored.selectors.iter().map(|s| s.to_string()).collect();
        s.sort();
        s
    }
}

/// Asserts `r` failed with `code` and a message containing `text`.
#[track_caller]
pub fn refused(r: Result<Agent, Status>, code: Code, text: &str) {
    match r {
        Ok(a) => panic!("attested {} but wanted {code:?} {text:?}", a.id),
        Err(s) => {
            assert_eq!(s.code(), code, "{}", s.message());
            assert!(
                s.message().contains(text),
                "wanted {text:?} in {:?}",
                s.message()
            );
        }
    }
}

/// A token valid from `ago` in the past for `ttl`.
pub fn backdated(mut c: SaClaims, ago: Duration, ttl: Duration) -> SaClaims {
    c.issued_at = SystemTime::now() - ago;
    c.expires_at = c.issued_at + ttl;
    c
}
