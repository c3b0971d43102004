//! Real pod cgroups on this machine, as the kubelet lays them out, so a
//! test can move a real process into a "pod" and let the agent read
//! `/proc/<pid>/cgroup` as on a node. Needs root and the hierarchies
//! mounted at `/sys/fs/cgroup/pids` (v1) and `/sys/fs/cgroup/unified` (v2).
//!
//! [`PodCgroup::create`] makes the directories; [`PodCgroup::add`] moves a
//! process in; dropping it (also while a test panics) moves what is still
//! inside back to the hierarchy's root and removes the pod's directories
//! (shared parents such as `kubepods` are removed when they are empty).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The v1 hierarchy used (any controller would do; `pids` exists on most
/// machines and has no side effects).
pub const V1_ROOT: &str = "/sys/fs/cgroup/pids";

/// The v2 (unified) hierarchy.
pub const V2_ROOT: &str = "/sys/fs/cgroup/unified";

/// How the kubelet names the cgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1, cgroupfs driver:
    /// `kubepods/<qos>/pod<uid>/<container-id>` under [`V1_ROOT`].
    V1Cgroupfs,
    /// cgroup v2, systemd driver:
    /// `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice/<runtime>-<id>.scope`
    /// under [`V2_ROOT`] (uid dashes as underscores).
    V2Systemd,
}

/// A pod's QoS class (guaranteed pods sit right under `kubepods`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qos {
    /// `kubepods/pod<uid>`.
    Guaranteed,
    /// `kubepods/burstable/pod<uid>`.
    Burstable,
    /// `kubepods/besteffort/pod<uid>`.
    BestEffort,
}

impl Qos {
    fn name(self) -> Option<&'static str> {
        match self {
            Self::Guaranteed => None,
            Self::Burstable => Some("burstable"),
            Self::BestEffort => Some("besteffort"),
        }
    }
}

/// Whether `layout`'s hierarchy is mounted and writable here; the error
/// says what is missing.
pub fn available(layout: Layout) -> Result<(), String> {
    let root = Path::new(root_of(layout));
    if !root.join("cgroup.procs").exists() {
        return Err(format!(
            "{} is not a mounted cgroup hierarchy (see `mount | grep cgroup`)",
            root.display()
        ));
    }
    let probe = root.join(format!("meshid-probe-{}", std::process::id()));
    std::fs::create_dir(&probe).map_err(|e| {
        format!(
            "cannot create a cgroup under {}: {e} (run as root)",
            root.display()
        )
    })?;
    let _ = std::fs::remove_dir(&probe);
    Ok(())
}

fn root_of(layout: Layout) -> &'static str {
    match layout {
        Layout::V1Cgroupfs => V1_ROOT,
        Layout::V2Systemd => V2_ROOT,
    }
}

/// One container's cgroup in a pod's cgroup; removed on drop.
#[derive(Debug)]
pub struct PodCgroup {
    root: PathBuf,
    /// From the hierarchy's root down to the container, relative.
    dirs: Vec<PathBuf>,
}

impl PodCgroup {
    /// Creates the cgroup of container `container_id` (64 hex) of pod
    /// `pod_uid` in `qos`. `runtime` names the systemd scope
    /// (`cri-containerd`, `crio`, `docker`: `<runtime>-<id>.scope`); the
    /// cgroupfs layout uses the bare id as the kubelet does. Panics with the
    /// reason when cgroups cannot be made here.
    pub fn create(
        layout: Layout,
        qos: Qos,
        pod_uid: &str,
        runtime: &str,
        container_id: &str,
    ) -> Self {
        if let Err(e) = available(layout) {
            panic!("pod cgroups: {e}");
        }
        let mut parts: Vec<String> = Vec::new();
        match layout {
            Layout::V1Cgroupfs => {
                parts.push("kubepods".into());
                parts.extend(qos.name().map(str::to_owned));
                parts.push(format!("pod{pod_uid}"));
                parts.push(container_id.to_owned());
            }
            Layout::V2Systemd => {
                let uid = pod_uid.replace('-', "_");
                parts.push("kubepods.slice".into());
                match qos.name() {
                    Some(q) => {
                        parts.push(format!("kubepods-{q}.slice"));
                        parts.push(format!("kubepods-{q}-pod{uid}.slice"));
                    }
                    None => parts.push(format!("kubepods-pod{uid}.slice")),
                }
                parts.push(format!("{runtime}-{container_id}.scope"));
            }
        }
        let mut dirs = Vec::new();
        let mut rel = PathBuf::new();
        for p in parts {
            rel.push(p);
            dirs.push(rel.clone());
        }
        let me = Self {
            root: PathBuf::from(root_of(layout)),
            dirs,
        };
        me.make();
        me
    }

    fn make(&self) {
        let leaf = self.path();
        // Another test may remove an empty shared parent meanwhile: retry.
        let mut last = None;
        for _ in 0..20 {
            match std::fs::create_dir_all(&leaf) {
                Ok(()) => return,
                Err(e) if e.kind() == ErrorKind::NotFound => last = Some(e),
                Err(e) => panic!("create cgroup {}: {e}", leaf.display()),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("create cgroup {}: {last:?}", leaf.display());
    }

    /// The container's cgroup directory.
    pub fn path(&self) -> PathBuf {
        self.root
            .join(self.dirs.last().cloned().unwrap_or_default())
    }

    /// The path `/proc/<pid>/cgroup` shows for a process in it
    /// (`/kubepods/besteffort/pod<uid>/<id>`).
    pub fn proc_path(&self) -> String {
        format!(
            "/{}",
            self.dirs.last().cloned().unwrap_or_default().display()
        )
    }

    /// Moves process `pid` (all its threads) into the container's cgroup.
    pub fn add(&self, pid: u32) {
        let procs = self.path().join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .unwrap_or_else(|e| panic!("move pid {pid} into {}: {e}", procs.display()));
    }

    /// The pids in the container's cgroup now.
    pub fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.path().join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        let back = self.root.join("cgroup.procs");
        for pid in self.pids() {
            let _ = std::fs::write(&back, pid.to_string());
        }
        // Pod and container directories are ours; a parent is shared and
        // only goes when empty. Exiting processes leave a moment later.
        for (i, dir) in self.dirs.iter().enumerate().rev() {
            let path = self.root.join(dir);
            let ours = i + 2 >= self.dirs.len();
            for attempt in 0..50 {
                match std::fs::remove_dir(&path) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(_) if !ours => break,
                    Err(e) if attempt == 49 => {
                        eprintln!("cannot remove cgroup {}: {e}", path.display());
                    }
                    Err(_) => {
                        for pid in self.pids() {
                            let _ = std::fs::write(&back, pid.to_string());
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
    }
}
