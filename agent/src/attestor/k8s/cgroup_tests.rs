//! Table tests from real `/proc/<pid>/cgroup` contents.
#![allow(clippy::unwrap_used)]

use super::*;

const UID: &str = "8dbc5577-d0e2-4706-8787-57d52c03ddf2";
const UID_: &str = "8dbc5577_d0e2_4706_8787_57d52c03ddf2";
const OTHER_UID: &str = "2c48913c-b29f-11e7-9350-020968147796";
const CID: &str = "14011c7d92a9e513dfd69211da0413dbf319a5e45a02b354ba6e98e10272542d";
const OTHER_CID: &str = "9e97b6e6d5b0bd2dbd9f3ea3d3b0e36b3c7c4b0b6a1e9de0e4fd93b0e0a7a0b8";
/// A static (mirror) pod's UID: the hash of its manifest.
const STATIC_UID: &str = "0ba3e6c7a0a2d1a3b7f3c4d5e6f7a8b9";

fn expect(text: &str) -> Option<PodContainer> {
    parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn ours() -> Option<PodContainer> {
    Some(PodContainer {
        pod_uid: UID.into(),
        container_id: CID.into(),
    })
}

#[test]
fn runtimes_drivers_qos_classes_and_cgroup_versions() {
    let cases = [
        // containerd, cgroupfs driver, cgroup v1, every QoS class.
        format!("12:pids:/kubepods/besteffort/pod{UID}/{CID}"),
        format!("4:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CID}"),
        format!("7:memory:/kubepods/pod{UID}/{CID}"),
        // containerd, systemd driver, cgroup v2.
        format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope"
        ),
        format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope"
        ),
        format!("0::/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{CID}.scope"),
        // containerd, cgroupfs driver, cgroup v2.
        format!("0::/kubepods/burstable/pod{UID}/{CID}"),
        // CRI-O, systemd driver (v1 and v2), and cgroupfs driver.
        format!(
            "10:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{CID}.scope"
        ),
        format!("0::/kubepods.slice/kubepods-pod{UID_}.slice/crio-{CID}.scope"),
        format!("0::/kubepods/besteffort/pod{UID}/crio-{CID}"),
        // Docker (dockershim / cri-dockerd), both drivers.
        format!("3:devices:/kubepods/burstable/pod{UID}/{CID}"),
        format!(
            "1:name=systemd:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/docker-{CID}.scope"
        ),
        // A kind node: kubepods nested under the node's own container.
        format!(
            "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope"
        ),
        format!("5:pids:/docker/{OTHER_CID}/kubepods/burstable/pod{UID}/{CID}"),
        // The container made cgroups of its own below its cgroup.
        format!("0::/kubepods/besteffort/pod{UID}/{CID}/init.scope"),
    ];
    for line in &cases {
        assert_eq!(expect(line), ours(), "{line}");
        assert_eq!(expect(&format!("{line}\n")), ours(), "{line} with newline");
    }
}

#[test]
fn a_whole_cgroup_v1_file_with_a_hybrid_unified_line() {
    let text = format!(
        "12:hugetlb:/kubepods/burstable/pod{UID}/{CID}\n\
         11:pids:/kubepods/burstable/pod{UID}/{CID}\n\
         10:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CID}\n\
         9:memory:/kubepods/burstable/pod{UID}/{CID}\n\
         1:name=systemd:/kubepods/burstable/pod{UID}/{CID}\n\
         0::/\n"
    );
    assert_eq!(expect(&text), ours());
}

#[test]
fn static_pod_uids_have_no_dashes() {
    let line = format!(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{STATIC_UID}.slice/cri-containerd-{CID}.scope"
    );
    assert_eq!(expect(&line).unwrap().pod_uid, STATIC_UID);
    let line = format!("9:memory:/kubepods/burstable/pod{STATIC_UID}/{CID}");
    assert_eq!(expect(&line).unwrap().pod_uid, STATIC_UID);
}

#[test]
fn processes_outside_pods_have_no_pod() {
    for text in [
        "0::/".to_owned(),
        "0::/user.slice/user-1000.slice/session-3.scope\n".to_owned(),
        "0::/system.slice/containerd.service".to_owned(),
        // Plain Docker, no Kubernetes.
        format!("12:pids:/docker/{CID}\n0::/system.slice/docker-{CID}.scope"),
        "1:name=systemd:/init.scope\n0::/init.scope\n".to_owned(),
        String::new(),
    ] {
        assert_eq!(expect(&text), None, "{text}");
    }
}

#[test]
fn cri_o_monitor_processes_are_not_the_container() {
    let conmon = format!(
        "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-conmon-{CID}.scope"
    );
    assert_eq!(expect(&conmon), None);
}

#[test]
fn hostile_and_garbage_files_are_refused() {
    let long = format!("0::/kubepods/pod{UID}/{}", "a".repeat(MAX_LINE_LEN));
    let cases: Vec<(String, &str)> = vec![
        (format!("0::/kubepods/pod{UID}/{CID}\0"), "NUL"),
        (long, "longer than"),
        (
            format!("0::/kubepods/pod{UID}/{CID}\n1:pids:/kubepods/pod{OTHER_UID}/{CID}"),
            "two pods",
        ),
        (
            format!("0::/kubepods/pod{UID}/{CID}\n1:pids:/kubepods/pod{UID}/{OTHER_CID}"),
            "two containers",
        ),
        ("0::/kubepods/besteffort/pod../..".into(), "neither a QoS"),
        (
            format!("0::/kubepods/pod{UID}/../pod{OTHER_UID}/{CID}"),
            "not a container",
        ),
        (
            format!("0::/kubepods/pod{UID}/{}", CID.to_uppercase()),
            "not a container",
        ),
        (
            format!("0::/kubepods/pod{UID}/{}", &CID[1..]),
            "not a container",
        ),
        (
            format!("0::/kubepods/pod{UID}/{}g", &CID[1..]),
            "not a container",
        ),
        (
            format!("0::/kubepods/pod{UID}/runc-{CID}.scope"),
            "not a container",
        ),
        (
            format!("0::/kubepods/pod{}/{CID}", UID.to_uppercase()),
            "neither a QoS",
        ),
        (format!("0::/kubepods/pod{UID_}/{CID}"), "neither a QoS"),
        (
            format!("0::/kubepods.slice/kubepods-pod{UID}.slice/cri-containerd-{CID}.scope"),
            "neither a QoS",
        ),
        ("0::/kubepods/besteffort".into(), "without a pod"),
        (
            format!("0::/kubepods/burstable/pod{UID}"),
            "none of its containers",
        ),
        (
            format!("0::/kubepods/pod{UID}/{CID}/kubepods/pod{OTHER_UID}/{OTHER_CID}"),
            "another pod",
        ),
        (
            format!("0::/kubepods/pod{UID}/{CID}/pod{OTHER_UID}"),
            "another pod",
        ),
        ("hello".into(), "hierarchy:controllers:path"),
        (format!("x::/kubepods/pod{UID}/{CID}"), "numeric hierarchy"),
        (format!("0::kubepods/pod{UID}/{CID}"), "not absolute"),
    ];
    for (text, says) in cases {
        let err = parse(&text).expect_err(&text);
        assert!(err.contains(says), "{text:?}: {err}");
        assert!(err.len() < 400, "error echoes too much: {err}");
    }
}
