//! The whole agent (`run`) against two replicas of an in-memory CA: after
//! the CA rotates its root and taints the old key, the agent stores the new
//! bundle in its data directory and renews its own SVID under the new key;
//! restarted without a join token, with its read-only `trust_bundle_file`
//! still holding only the old root and the replica it used gone, it comes
//! back from its data directory through the other replica. The operator's
//! file is never written.
#![allow(clippy::unwrap_used)]

#[path = "support/fake_ca.rs"]
mod fake_ca;
#[path = "support/fake_ca_server.rs"]
mod fake_ca_server;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fake_ca::FakeCa;
use fake_ca_server::FakeCaServer;
use meshid_agent::attest::store;
use meshid_agent::config::AgentConfig;
use meshid_identity::x509::authority_key_id;
use meshid_runtime::clock::{SharedClock, SystemClock};

/// How long the agent may take for each step (syncs every 200 ms).
const WITHIN: Duration = Duration::from_secs(20);

fn config(dir: &Path, servers: &[&FakeCaServer], token: bool) -> AgentConfig {
    let addresses: Vec<String> = servers
        .iter()
        .map(|s| format!("{:?}", s.address()))
        .collect();
    let token = if token { "join_token = \"tok\"\n" } else { "" };
    AgentConfig::from_toml(&format!(
        "trust_domain = \"example.org\"\nca_addresses = [{}]\n\
         trust_bundle_file = {:?}\ndata_dir = {:?}\nworkload_api_socket = {:?}\n\
         sync_interval = \"200ms\"\n{token}",
        addresses.join(", "),
        dir.join("ca.pem").display().to_string(),
        dir.join("data").display().to_string(),
        dir.join("run/agent.sock").display().to_string(),
    ))
    .unwrap()
}

/// The agent running in this process.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), meshid_agent::run::RunError>>,
}

impl Running {
    fn start(config: AgentConfig) -> Self {
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(meshid_agent::run::run(config, async {
            let _ = rx.await;
        }));
        Self { stop, task }
    }

    /// Shuts the agent down; it must stop cleanly.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(WITHIN, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

fn stored(dir: &Path, ca: &FakeCa) -> Option<store::Stored> {
    store::load(&dir.join("data"), &ca.td).ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_trusts_the_rotated_root_from_its_data_dir_not_its_stale_bundle_file() {
    let clock: SharedClock = Arc::new(SystemClock);
    let ca = FakeCa::new(clock);
    ca.lock().tokens.insert("tok".into());
    ca.add_entry("e0", "/api", 4242);
    let k1 = ca.key_id();
    ca.set_keys(&[&k1], &[], 60);
    let a = FakeCaServer::start(ca.clone()).await;
    let b = FakeCaServer::start(ca.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bootstrap = tmp.path().join("ca.pem");
    let pem = meshid_identity::x509::to_pem(&[ca.root()]);
    std::fs::write(&bootstrap, &pem).unwrap();
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o444)).unwrap();

    let agent = Running::start(config(tmp.path(), &[&a, &b], true));
    meshid_tests::eventually_async("the agent attested and synced", WITHIN, || async {
        (ca.lock().batches.len() == 1).then_some(())
    })
    .await;
    assert_eq!(b.calls(), 0, "everything through the first replica");

    // Rotation, then a taint of the old key.
    ca.rotate();
    let k2 = ca.key_id();
    ca.set_keys(&[&k2], &[&k1], 60);
    let renewed = meshid_tests::eventually_async(
        "the new bundle stored and the agent SVID renewed under the new key",
        WITHIN,
        || async {
            stored(tmp.path(), &ca).filter(|s| {
                s.bundle.x509_authorities.len() == 2
                    && authority_key_id(&s.chain[0]) == Some(k2.clone())
            })
        },
    )
    .await;
    assert_eq!(
        renewed.bundle.x509_authorities,
        ca.trust_bundle().x509_authorities
    );
    agent.stop().await;

    // Restart: no token, the bootstrap file predates the rotation, the
    // first replica is gone.
    a.kill().await;
    ca.add_entry("e1", "/db", 4243);
    let agent = Running::start(config(tmp.path(), &[&a, &b], false));
    meshid_tests::eventually_async(
        "the restarted agent synced through the second",
        WITHIN,
        || async { (ca.lock().batches.len() >= 3).then_some(()) },
    )
    .await;
    assert!(!agent.task.is_finished(), "still running");
    assert_eq!(ca.lock().attests, 1, "no new attestation");
    assert!(b.calls() >= 2);
    agent.stop().await;

    assert_eq!(
        std::fs::read_to_string(&bootstrap).unwrap(),
        pem,
        "never written"
    );
    let names: Vec<String> = std::fs::read_dir(tmp.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "no temporary file left: {names:?}");
}
