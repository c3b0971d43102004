//! The k8s attestor over a fake /proc and a scripted pod source.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::pods::PodList;
use super::*;

const PID: i32 = 4242;
const START: u64 = 777;
const UID: &str = "8dbc5577-d0e2-4706-8787-57d52c03ddf2";
const CID: &str = "14011c7d92a9e513dfd69211da0413dbf319a5e45a02b354ba6e98e10272542d";

/// Answers the scripted lists in turn, then the last one forever.
#[derive(Debug)]
struct Scripted {
    lists: Mutex<Vec<PodList>>,
    calls: AtomicUsize,
}

impl Scripted {
    fn new(lists: Vec<serde_json::Value>) -> Arc<Self> {
        Arc::new(Self {
            lists: Mutex::new(
                lists
                    .into_iter()
                    .map(|l| serde_json::from_value(l).unwrap())
                    .collect(),
            ),
            calls: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl PodSource for Scripted {
    async fn pods(&self) -> Result<PodList, K8sError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut lists = self.lists.lock().unwrap();
        if lists.len() > 1 {
            Ok(lists.remove(0))
        } else {
            Ok(lists[0].clone())
        }
    }
}

fn listed(container_id: &str) -> serde_json::Value {
    serde_json::json!({"items": [{
        "metadata": {"name": "api-1", "namespace": "payments", "uid": UID, "labels": {"app": "api"}},
        "spec": {"serviceAccountName": "api", "nodeName": "node-1",
                 "containers": [{"name": "app", "image": "app:1"}]},
        "status": {"containerStatuses": [{"name": "app", "image": "app:1",
            "imageID": "app@sha256:aa", "containerID": format!("containerd://{container_id}")}]}
    }]})
}

fn empty() -> serde_json::Value {
    serde_json::json!({"items": []})
}

struct FakeProc(tempfile::TempDir);

impl FakeProc {
    fn new(cgroup: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(PID.to_string());
        std::fs::create_dir(&p).unwrap();
        std::fs::write(
            p.join("stat"),
            format!("{PID} (app) S {}{START} 0 0\n", "0 ".repeat(18)),
        )
        .unwrap();
        std::fs::write(p.join("cgroup"), cgroup).unwrap();
        Self(dir)
    }

    fn attestor(&self, source: Arc<Scripted>) -> K8sAttestor {
        K8sAttestor::with_source(source, &K8sAttestorConfig::default())
            .with_proc_root(self.0.path())
    }
}

fn peer() -> PeerInfo {
    PeerInfo {
        pid: PID,
        uid: 0,
        gid: 0,
        start_time: Some(START),
    }
}

fn in_pod() -> String {
    format!(
        "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{CID}.scope\n",
        UID.replace('-', "_")
    )
}

fn strings(s: Vec<Selector>) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_listed_container_gets_its_pod_selectors() {
    let source = Scripted::new(vec![listed(CID)]);
    let got = FakeProc::new(&in_pod())
        .attestor(source.clone())
        .attest(&peer())
        .await
        .unwrap();
    let got = strings(got);
    for want in [
        "k8s:ns:payments",
        "k8s:sa:api",
        "k8s:pod-uid:8dbc5577-d0e2-4706-8787-57d52c03ddf2",
        "k8s:container-name:app",
        "k8s:node-name:node-1",
    ] {
        assert!(got.iter().any(|g| g == want), "{want} in {got:?}");
    }
    assert_eq!(source.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_process_in_no_pod_gets_no_selectors_and_no_kubelet_call() {
    let source = Scripted::new(vec![listed(CID)]);
    let got = FakeProc::new("0::/user.slice/user-1000.slice/session-2.scope\n")
        .attestor(source.clone())
        .attest(&peer())
        .await
        .unwrap();
    assert!(got.is_empty());
    assert_eq!(source.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_just_started_container_is_waited_for() {
    // Not listed, then the pod without the container's ID, then listed.
    let source = Scripted::new(vec![empty(), listed(""), listed(CID)]);
    let started = Instant::now();
    let got = FakeProc::new(&in_pod())
        .attestor(source.clone())
        .attest(&peer())
        .await
        .unwrap();
    assert!(strings(got).contains(&"k8s:sa:api".to_owned()));
    assert_eq!(source.calls(), 3);
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn never_listed_fails_after_max_wait_with_bounded_requests() {
    let source = Scripted::new(vec![listed(&CID.replace('1', "2"))]);
    let started = Instant::now();
    let err = FakeProc::new(&in_pod())
        .attestor(source.clone())
        .attest(&peer())
        .await
        .unwrap_err();
    let waited = started.elapsed();
    let msg = err.to_string();
    assert!(
        matches!(err, AttestError::K8s(K8sError::NotListed { .. })),
        "{msg}"
    );
    assert!(
        msg.contains("container 1401") && msg.contains("payments/api-1"),
        "{msg}"
    );
    assert!(
        waited >= Duration::from_millis(9_500) && waited <= Duration::from_secs(11),
        "{waited:?}"
    );
    // 10 s at 250 ms (plus the first): about 40 requests, never a spin.
    assert!((35..=42).contains(&source.calls()), "{}", source.calls());
}

#[tokio::test(start_paused = true)]
async fn concurrent_waiters_share_kubelet_requests() {
    let source = Scripted::new(vec![empty(), empty(), listed(CID)]);
    let fake = FakeProc::new(&in_pod());
    let attestor = fake.attestor(source.clone());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let a = attestor.clone();
            tokio::spawn(async move { a.attest(&peer()).await.map(strings) })
        })
        .collect();
    for t in tasks {
        assert!(
            t.await
                .unwrap()
                .unwrap()
                .contains(&"k8s:ns:payments".to_owned())
        );
    }
    assert!(source.calls() <= 4, "{}", source.calls());
}

#[tokio::test(start_paused = true)]
async fn a_recycled_pid_or_a_hostile_cgroup_file_is_refused() {
    let source = Scripted::new(vec![listed(CID)]);
    let fake = FakeProc::new(&in_pod());
    let recycled = PeerInfo {
        start_time: Some(START + 1),
        ..peer()
    };
    let err = fake
        .attestor(source.clone())
        .attest(&recycled)
        .await
        .unwrap_err();
    assert!(matches!(err, AttestError::ProcessChanged { .. }), "{err}");

    let fake = FakeProc::new(&format!(
        "0::/kubepods/pod{UID}/{CID}\n1:pids:/kubepods/pod2c48913c-b29f-11e7-9350-020968147796/{CID}\n"
    ));
    let err = fake
        .attestor(source.clone())
        .attest(&peer())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AttestError::ProcParse { .. }), "{msg}");
    assert!(msg.contains("cgroup") && msg.contains("two pods"), "{msg}");
    assert_eq!(source.calls(), 0);
}
