//! The k8s workload attestor end to end: the real `meshid agent` (join
//! token, `[workload_attestor.k8s]` pointed at a [`FakeKubelet`]) serves
//! real client processes that were moved into real pod cgroups
//! ([`PodCgroup`]) before they connected. Each client is
//! `sh -c 'read _; exec meshid agent api fetch ...'`: spawned, moved into
//! its cgroup, then released through stdin; `exec` keeps its pid and cgroup.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use meshid_tests::cgroup::{Layout, PodCgroup, Qos};
use meshid_tests::kubelet::{self, FakeKubelet};
use meshid_tests::{TestAgent, TestCa, meshid_bin, tempdir};
use serde_json::Value;

const TOKEN: &str = "kubelet-reader-token";
/// Clients in pods run as root with this primary group, so the
/// `unix:uid:0` + `unix:gid:0` host entry does not match them.
const POD_GID: u32 = 4242;
/// The longest a client may take (max_wait is 1 s, retry_interval 100 ms).
const CLIENT_DEADLINE: Duration = Duration::from_secs(30);

const POD_V1: &str = "0a1b2c3d-0000-4000-8000-000000000001";
const POD_V2: &str = "0a1b2c3d-0000-4000-8000-000000000002";
const POD_UNLISTED: &str = "0a1b2c3d-0000-4000-8000-000000000003";

fn container_id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// A client process waiting on stdin before it calls the Workload API.
struct Client {
    child: std::process::Child,
}

impl Client {
    /// `meshid agent api fetch --output json` on `socket`, as root with
    /// primary group `gid`; it waits for [`go`](Self::go).
    fn spawn(socket: &Path, gid: u32) -> Self {
        let child = Command::new("sh")
            .args([
                "-c",
                r#"read _; exec "$MESHID_BIN" agent api fetch --socket "$SOCK" --output json"#,
            ])
            .env("MESHID_BIN", meshid_bin())
            .env("SOCK", socket)
            .uid(0)
            .gid(gid)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the client");
        Self { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it connect.
    fn go(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("client stdin");
        stdin.write_all(b"go\n").expect("release the client");
        stdin.flush().expect("flush");
    }

    /// Waits for it (killing it after [`CLIENT_DEADLINE`]).
    fn finish(mut self) -> Output {
        let start = Instant::now();
        while self
            .child
            .try_wait()
            .expect("wait for the client")
            .is_none()
        {
            if start.elapsed() > CLIENT_DEADLINE {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.wait_with_output().expect("client output")
    }
}

/// The SPIFFE IDs a successful fetch printed.
fn ids(out: &Output) -> BTreeSet<String> {
    assert!(
        out.status.success(),
        "fetch failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("fetch prints JSON");
    doc["svids"]
        .as_array()
        .expect("svids")
        .iter()
        .map(|s| s["spiffe_id"].as_str().expect("spiffe_id").to_owned())
        .collect()
}

/// The error a failed fetch printed.
fn refusal(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "fetch succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_in_real_cgroups_get_their_k8s_ids_and_others_do_not() {
    let started = Instant::now();
    let kubelet = FakeKubelet::start(TOKEN).await;
    let (c_v1, c_v2) = (container_id(0x01), container_id(0x02));
    kubelet.set_pods(vec![
        kubelet::pod(
            "payments",
            "api-v1",
            POD_V1,
            "api",
            "node-1",
            &[("app", "api")],
            &[(
                "api",
                "registry.example/api:1.2",
                &format!("containerd://{c_v1}"),
            )],
        ),
        kubelet::pod(
            "payments",
            "api-v2",
            POD_V2,
            "api",
            "node-1",
            &[("app", "api")],
            &[(
                "api",
                "registry.example/api:1.2",
                &format!("cri-o://{c_v2}"),
            )],
        ),
    ]);
    tokio::task::block_in_place(|| scenario(&kubelet, &c_v1, &c_v2));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

fn scenario(kubelet: &FakeKubelet, c_v1: &str, c_v2: &str) {
    let tmp = tempdir();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir logs");
    let ca_file = tmp.path().join("kubelet-ca.pem");
    kubelet.write_ca(&ca_file);
    let token_file = tmp.path().join("kubelet-token");
    std::fs::write(&token_file, TOKEN).expect("write token");

    let ca = TestCa::builder(tmp.path().join("ca"), &logs).start();
    let token = ca.join_token();
    let td = ca.trust_domain().to_owned();
    let api = format!("spiffe://{td}/ns/payments/sa/api");
    let mixed = format!("spiffe://{td}/payments/api-as-root");
    let host = format!("spiffe://{td}/host-only");
    ca.create_entry(&api, &token.agent_id, &["k8s:ns:payments", "k8s:sa:api"]);
    ca.create_entry(
        &mixed,
        &token.agent_id,
        &["unix:uid:0", "k8s:ns:payments", "k8s:pod-label:app:api"],
    );
    ca.create_entry(&host, &token.agent_id, &["unix:uid:0", "unix:gid:0"]);
    let config = format!(
        "\n[workload_attestor.k8s]\nkubelet_url = {url:?}\nkubelet_ca_path = {ca:?}\n\
         token_path = {tok:?}\ncache_ttl = \"200ms\"\nretry_interval = \"100ms\"\nmax_wait = \"1s\"\n",
        url = kubelet.url(),
        ca = ca_file.display().to_string(),
        tok = token_file.display().to_string(),
    );
    let mut agent = TestAgent::builder(&ca, tmp.path())
        .join_token(&token.secret)
        .extra(&config)
        .start(&logs);
    // This process is in no pod: it gets the host entry only.
    agent.wait_for_svid(Some(&host));
    let socket = agent.workload_socket.clone();

    // Case 1: v1 cgroupfs besteffort and v2 systemd burstable pods (listed).
    let cg_v1 = PodCgroup::create(Layout::V1Cgroupfs, Qos::BestEffort, POD_V1, "", c_v1);
    let cg_v2 = PodCgroup::create(Layout::V2Systemd, Qos::Burstable, POD_V2, "crio", c_v2);
    // Case 2: a pod the kubelet does not list.
    let cg_unlisted = PodCgroup::create(
        Layout::V1Cgroupfs,
        Qos::Guaranteed,
        POD_UNLISTED,
        "",
        &container_id(0x03),
    );
    // Case 3: a listed pod, a container it does not list.
    let cg_stranger = PodCgroup::create(
        Layout::V2Systemd,
        Qos::BestEffort,
        POD_V1,
        "cri-containerd",
        &container_id(0x04),
    );
    let mut in_v1 = Client::spawn(&socket, POD_GID);
    let mut in_v2 = Client::spawn(&socket, POD_GID);
    let mut unlisted = Client::spawn(&socket, POD_GID);
    let mut stranger = Client::spawn(&socket, POD_GID);
    // Case 4: in no pod, as the pod clients and as root:root.
    let mut no_pod = Client::spawn(&socket, POD_GID);
    let mut host_proc = Client::spawn(&socket, 0);
    cg_v1.add(in_v1.pid());
    cg_v2.add(in_v2.pid());
    cg_unlisted.add(unlisted.pid());
    cg_stranger.add(stranger.pid());
    let before = kubelet.requests();
    let t0 = Instant::now();
    for c in [
        &mut in_v1,
        &mut in_v2,
        &mut unlisted,
        &mut stranger,
        &mut no_pod,
        &mut host_proc,
    ] {
        c.go();
    }
    let (in_v1, in_v2) = (in_v1.finish(), in_v2.finish());
    let (unlisted, stranger) = (unlisted.finish(), stranger.finish());
    let (no_pod, host_proc) = (no_pod.finish(), host_proc.finish());
    let waited = t0.elapsed();

    let payments: BTreeSet<String> = [api.clone(), mixed.clone()].into();
    assert_eq!(ids(&in_v1), payments, "v1 cgroupfs besteffort pod");
    assert_eq!(ids(&in_v2), payments, "v2 systemd burstable pod (CRI-O)");

    for (what, out, expect) in [
        ("unlisted pod", &unlisted, format!("pod {POD_UNLISTED}")),
        ("unlisted container", &stranger, container_id(0x04)),
    ] {
        let err = refusal(out);
        assert!(
            err.contains("PermissionDenied")
                && err.contains("could not attest the caller")
                && err.contains("is not listed by the kubelet after waiting")
                && err.contains(&expect),
            "{what}: {err}\nagent log:\n{}",
            agent.child.log()
        );
    }
    // The attestor stops once another retry would pass max_wait (1 s).
    assert!(
        waited >= Duration::from_millis(900),
        "refused without retrying until max_wait: {waited:?}"
    );

    let err = refusal(&no_pod);
    assert!(
        err.contains("PermissionDenied") && err.contains("no identity registered"),
        "{err}"
    );
    assert_eq!(ids(&host_proc), BTreeSet::from([host.clone()]));

    // Case 5: the kubelet was asked, with the token from token_path...
    assert!(kubelet.requests() > before, "the kubelet was never asked");
    assert_eq!(kubelet.unauthorized(), 0);

    // ...which is re-read for each request: a rotated kubelet token refuses
    // the old file, and the new file works without restarting the agent.
    kubelet.set_token("rotated");
    std::thread::sleep(Duration::from_millis(400)); // past cache_ttl
    let mut c = Client::spawn(&socket, POD_GID);
    cg_v1.add(c.pid());
    c.go();
    let err = refusal(&c.finish());
    assert!(
        err.contains("PermissionDenied") && err.contains("refused the agent's token"),
        "{err}"
    );
    assert!(kubelet.unauthorized() > 0);
    std::fs::write(&token_file, "rotated").expect("rotate the token file");
    let mut c = Client::spawn(&socket, POD_GID);
    cg_v2.add(c.pid());
    c.go();
    assert_eq!(ids(&c.finish()), payments, "after the token file rotated");
}
