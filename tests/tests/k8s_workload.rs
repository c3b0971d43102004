//! The k8s workload attestor end to end with the real kernel: real pod
//! cgroups on this machine ([`PodCgroup`], cgroup v1 cgroupfs and v2
//! systemd layouts), a real client process moved into one before it calls
//! the Workload API, the real `meshid agent` reading `/proc/<pid>/cgroup`
//! and asking a [`FakeKubelet`] (TLS, token checked) for `/pods`. First the
//! fixtures themselves.

use std::path::Path;
use std::process::{Command, Stdio};

use meshid_tests::cgroup::{Layout, PodCgroup, Qos};
use meshid_tests::kubelet::{self, FakeKubelet};
use serde_json::Value;

const TOKEN: &str = "kubelet-reader-token";

fn container_id(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

fn curl(url: &str, ca: &Path, token: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "10",
        "-w",
        "\n%{http_code}",
        "--cacert",
    ])
    .arg(ca);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status code"), body.to_owned())
}

#[tokio::test]
async fn fake_kubelet_lists_pods_only_with_its_token_over_verified_tls() {
    let kubelet = FakeKubelet::start(TOKEN).await;
    let dir = meshid_tests::tempdir();
    let ca = dir.path().join("kubelet-ca.pem");
    kubelet.write_ca(&ca);
    let pod = kubelet::pod(
        "payments",
        "api-7d9f",
        "11111111-2222-4333-8444-555555555555",
        "api",
        "node-1",
        &[("app", "api")],
        &[(
            "api",
            "registry.example/api:1.2",
            &format!("containerd://{}", container_id(0xab)),
        )],
    );
    kubelet.set_pods(vec![pod.clone()]);

    let url = format!("{}/pods", kubelet.url());
    let port = kubelet.url().rsplit(':').next().expect("port").to_owned();
    let (ca2, url2) = (ca.clone(), url.clone());
    let (none, wrong, good, by_name) = tokio::task::spawn_blocking(move || {
        (
            curl(&url2, &ca2, None),
            curl(&url2, &ca2, Some("other")),
            curl(&url2, &ca2, Some(TOKEN)),
            curl(&format!("https://localhost:{port}/pods"), &ca2, Some(TOKEN)),
        )
    })
    .await
    .expect("curl task");
    assert_eq!(none.0, 401);
    assert_eq!(wrong.0, 401);
    assert_eq!(good.0, 200, "{}", good.1);
    assert_eq!(by_name.0, 200);
    let list: Value = serde_json::from_str(&good.1).expect("PodList");
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"][0], pod);
    let status = &list["items"][0]["status"]["containerStatuses"][0];
    assert_eq!(
        status["containerID"],
        format!("containerd://{}", container_id(0xab))
    );
    assert!(
        status["imageID"]
            .as_str()
            .is_some_and(|i| i.contains("@sha256:"))
    );
    assert_eq!((kubelet.requests(), kubelet.unauthorized()), (4, 2));

    kubelet.set_token("rotated");
    let (ca2, url2) = (ca.clone(), url.clone());
    let (old, new) = tokio::task::spawn_blocking(move || {
        (
            curl(&url2, &ca2, Some(TOKEN)).0,
            curl(&url2, &ca2, Some("rotated")).0,
        )
    })
    .await
    .expect("curl task");
    assert_eq!((old, new), (401, 200));
}

/// The line of `/proc/<pid>/cgroup` for a hierarchy (`pids` for v1, the
/// `0::` line for v2).
fn proc_line(pid: u32, layout: Layout) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    let want = match layout {
        Layout::V1Cgroupfs => ":pids:",
        Layout::V2Systemd => "0::",
    };
    text.lines()
        .find(|l| match layout {
            Layout::V1Cgroupfs => l.contains(want),
            Layout::V2Systemd => l.starts_with(want),
        })
        .map(|l| l.split_once(want).map(|(_, p)| p).unwrap_or(l).to_owned())
        .unwrap_or_default()
}

#[test]
fn pod_cgroups_hold_real_processes_and_are_removed_on_drop() {
    let cases = [
        (Layout::V1Cgroupfs, Qos::BestEffort, "cri-containerd"),
        (Layout::V1Cgroupfs, Qos::Guaranteed, "cri-containerd"),
        (Layout::V2Systemd, Qos::Burstable, "cri-containerd"),
        (Layout::V2Systemd, Qos::Guaranteed, "crio"),
    ];
    for (i, (layout, qos, runtime)) in cases.into_iter().enumerate() {
        let uid = format!("aaaaaaaa-bbbb-4ccc-8ddd-00000000000{i}");
        let id = container_id(u8::try_from(i).expect("small"));
        let cg = PodCgroup::create(layout, qos, &uid, runtime, &id);
        let expected = match (layout, qos) {
            (Layout::V1Cgroupfs, Qos::BestEffort) => format!("/kubepods/besteffort/pod{uid}/{id}"),
            (Layout::V1Cgroupfs, _) => format!("/kubepods/pod{uid}/{id}"),
            (Layout::V2Systemd, Qos::Burstable) => format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/{runtime}-{id}.scope",
                uid.replace('-', "_")
            ),
            (Layout::V2Systemd, _) => format!(
                "/kubepods.slice/kubepods-pod{}.slice/{runtime}-{id}.scope",
                uid.replace('-', "_")
            ),
        };
        assert_eq!(cg.proc_path(), expected);
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        cg.add(child.id());
        assert_eq!(proc_line(child.id(), layout), expected);
        assert_eq!(cg.pids(), vec![child.id()]);
        let path = cg.path();
        drop(cg);
        assert!(!path.exists(), "{} left behind", path.display());
        assert_eq!(proc_line(child.id(), layout), "/");
        let _ = child.kill();
        let _ = child.wait();
    }

    // A test that panics still cleans up.
    let id = container_id(0xee);
    let leaked = std::thread::spawn(move || {
        let cg = PodCgroup::create(
            Layout::V1Cgroupfs,
            Qos::Burstable,
            "cccccccc-bbbb-4ccc-8ddd-000000000000",
            "cri-containerd",
            &id,
        );
        assert!(cg.path().exists());
        panic!("test failure inside a pod cgroup");
    })
    .join();
    assert!(leaked.is_err());
    assert!(
        !Path::new(
            "/sys/fs/cgroup/pids/kubepods/burstable/podcccccccc-bbbb-4ccc-8ddd-000000000000"
        )
        .exists()
    );
}
