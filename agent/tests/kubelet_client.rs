//! The k8s attestor's kubelet client against a real HTTPS server: the
//! token sent (and re-read), 401 handled, the kubelet CA verified (another
//! CA refused, a rotated CA file picked up), the server name, a
//! just-started container waited for, max_wait respected, the body and
//! time bounds.
#![allow(clippy::unwrap_used)]

#[path = "support/kubelet_server.rs"]
mod kubelet_server;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kubelet_server::{KubeletServer, pod};
use meshid_agent::attestor::k8s::K8sError;
use meshid_agent::attestor::k8s::cgroup::PodContainer;
use meshid_agent::attestor::k8s::kubelet::KubeletClient;
use meshid_agent::attestor::{K8sAttestor, K8sAttestorConfig};

const UID: &str = "8dbc5577-d0e2-4706-8787-57d52c03ddf2";
const CID: &str = "14011c7d92a9e513dfd69211da0413dbf319a5e45a02b354ba6e98e10272542d";

fn config(server: &KubeletServer, dir: &Path) -> K8sAttestorConfig {
    std::fs::write(dir.join("ca.crt"), &server.ca_pem).unwrap();
    std::fs::write(dir.join("token"), "agent-sa-token\n").unwrap();
    K8sAttestorConfig {
        kubelet_url: server.url(),
        kubelet_ca_path: dir.join("ca.crt"),
        token_path: dir.join("token"),
        retry_interval: Duration::from_millis(50),
        max_wait: Duration::from_secs(2),
        ..K8sAttestorConfig::default()
    }
}

fn ours() -> PodContainer {
    PodContainer {
        pod_uid: UID.into(),
        container_id: CID.into(),
    }
}

fn strings(s: Vec<meshid_identity::Selector>) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn lists_pods_with_the_bearer_token_over_verified_tls() {
    let server = KubeletServer::start("agent-sa-token").await;
    server.set_pods(vec![pod("payments", "api-1", UID, "api", CID)]);
    let dir = tempfile::tempdir().unwrap();
    let attestor = K8sAttestor::new(&config(&server, dir.path())).unwrap();
    let got = strings(attestor.selectors_of(&ours()).await.unwrap());
    for want in [
        "k8s:ns:payments",
        "k8s:sa:api",
        "k8s:pod-name:api-1",
        "k8s:pod-label:app:api-1",
        "k8s:container-name:app",
        "k8s:container-image:registry.example/app:1",
        "k8s:node-name:node-1",
    ] {
        assert!(got.iter().any(|g| g == want), "{want} in {got:?}");
    }
    assert_eq!(
        *server.state.authorizations.lock().unwrap(),
        ["Bearer agent-sa-token"]
    );
}

#[tokio::test]
async fn a_refused_token_is_a_clear_error_and_the_rewritten_file_is_used_next() {
    let server = KubeletServer::start("rotated-token").await;
    let dir = tempfile::tempdir().unwrap();
    let client = KubeletClient::new(&config(&server, dir.path())).unwrap();
    let err = client.pods().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, K8sError::Unauthorized { status: 401, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("nodes/proxy") && msg.contains("Unauthorized"),
        "{msg}"
    );
    std::fs::write(dir.path().join("token"), "rotated-token").unwrap();
    client.pods().await.unwrap();
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn a_kubelet_with_a_certificate_of_another_ca_is_refused_until_the_ca_file_is_right() {
    let server = KubeletServer::start("agent-sa-token").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&server, dir.path());
    let (other_ca, _, _) = kubelet_server::pki();
    std::fs::write(&cfg.kubelet_ca_path, other_ca).unwrap();
    let client = KubeletClient::new(&cfg).unwrap();
    let err = client.pods().await.unwrap_err();
    assert!(matches!(err, K8sError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("kubelet_ca_path"), "{err}");
    assert_eq!(server.requests(), 0, "nothing (no token) was sent");

    // The CA file is re-read: the right CA is used without a restart.
    std::fs::write(&cfg.kubelet_ca_path, &server.ca_pem).unwrap();
    client.pods().await.unwrap();
}

#[tokio::test]
async fn the_certificate_is_checked_for_the_configured_server_name() {
    let server = KubeletServer::start("agent-sa-token").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&server, dir.path());
    cfg.kubelet_tls_server_name = Some("localhost".into());
    KubeletClient::new(&cfg).unwrap().pods().await.unwrap();
    cfg.kubelet_tls_server_name = Some("node-2.example".into());
    let err = KubeletClient::new(&cfg).unwrap().pods().await.unwrap_err();
    assert!(matches!(err, K8sError::Tls { .. }), "{err}");
}

#[tokio::test]
async fn skipping_verification_accepts_any_kubelet_certificate() {
    let server = KubeletServer::start("agent-sa-token").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&server, dir.path());
    cfg.kubelet_ca_path = dir.path().join("absent.crt");
    assert!(matches!(
        KubeletClient::new(&cfg).unwrap().pods().await,
        Err(K8sError::Ca { .. })
    ));
    cfg.skip_kubelet_verification = true;
    KubeletClient::new(&cfg).unwrap().pods().await.unwrap();
}

#[tokio::test]
async fn a_just_started_container_is_found_once_the_kubelet_lists_it() {
    let server = KubeletServer::start("agent-sa-token").await;
    // The pod is listed, its container not started yet.
    server.set_pods(vec![pod("payments", "api-1", UID, "api", "")]);
    let dir = tempfile::tempdir().unwrap();
    let attestor = K8sAttestor::new(&config(&server, dir.path())).unwrap();
    let task = tokio::spawn(async move { attestor.selectors_of(&ours()).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!task.is_finished());
    server.set_pods(vec![pod("payments", "api-1", UID, "api", CID)]);
    let got = strings(task.await.unwrap().unwrap());
    assert!(got.contains(&"k8s:sa:api".to_owned()), "{got:?}");
    assert!(server.requests() >= 3, "{}", server.requests());
}

#[tokio::test]
async fn a_container_never_listed_fails_after_max_wait() {
    let server = KubeletServer::start("agent-sa-token").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&server, dir.path());
    cfg.max_wait = Duration::from_secs(1);
    cfg.retry_interval = Duration::from_millis(100);
    let attestor = K8sAttestor::new(&cfg).unwrap();
    let started = Instant::now();
    let err = attestor.selectors_of(&ours()).await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, K8sError::NotListed { .. }), "{err}");
    assert!(err.to_string().contains(UID), "{err}");
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(
        (5..=12).contains(&server.requests()),
        "{}",
        server.requests()
    );
}

#[tokio::test]
async fn an_oversized_or_missing_answer_is_bounded() {
    let server = KubeletServer::start("agent-sa-token").await;
    let dir = tempfile::tempdir().unwrap();
    let client = KubeletClient::new(&config(&server, dir.path())).unwrap();
    server.state.huge.store(true, Ordering::SeqCst);
    let err = client.pods().await.unwrap_err();
    assert!(err.to_string().contains("larger than 33554432"), "{err}");

    server.state.huge.store(false, Ordering::SeqCst);
    server.state.hang.store(true, Ordering::SeqCst);
    let client = client.with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = client.pods().await.unwrap_err();
    assert!(matches!(err, K8sError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}
