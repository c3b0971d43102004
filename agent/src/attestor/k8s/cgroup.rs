//! Which pod and container a process runs in, from `/proc/<pid>/cgroup`.
//!
//! Each line is `hierarchy-ID:controllers:path` (cgroup v1: one line per
//! hierarchy; v2: the one line `0::path`). The kubelet puts pods under a
//! `kubepods` cgroup; the runtime puts each container under its pod:
//!
//! ```text
//! cgroupfs driver:  /kubepods[/besteffort|/burstable]/pod<uid>/<container>
//! systemd driver:   /kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_with_underscores>.slice/<container>
//! <container>:      <id> | cri-containerd-<id>.scope | crio-<id>[.scope] | docker-<id>[.scope]
//! ```
//!
//! (The kubepods cgroup may itself sit deeper, e.g. under a kind node's
//! `/docker/<id>/` or `/kubelet.slice/kubelet-kubepods.slice/`.) A container
//! ID is 64 lowercase hex digits; a pod UID is a lowercase UUID (or the 32
//! hex digits of a static pod). `crio-conmon-<id>` is CRI-O's monitor, not
//! the container: those lines are skipped.
//!
//! Fail closed: no `kubepods` anywhere means the process is not in a pod;
//! a `kubepods` path that does not parse, or lines naming two different
//! pods or containers, is an error, never a guess.

/// Longest line accepted (the kernel's paths are far shorter).
pub const MAX_LINE_LEN: usize = 4096;

/// The pod and container a process belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodContainer {
    /// The pod's UID (`metadata.uid`), with dashes.
    pub pod_uid: String,
    /// The container ID, 64 lowercase hex digits, without the runtime prefix.
    pub container_id: String,
}

/// What one path says.
#[derive(Debug, PartialEq, Eq)]
enum PathKind {
    /// Not under `kubepods`.
    NotPod,
    /// CRI-O's conmon: not a container.
    Ignored,
    /// A container of a pod.
    Container(PodContainer),
}

/// Parses the whole file; `Ok(None)` when the process is in no pod.
/// The error text says what is wrong without echoing the whole line.
pub fn parse(text: &str) -> Result<Option<PodContainer>, String> {
    if text.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    let mut found: Option<PodContainer> = None;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.is_empty() {
            continue;
        }
        if line.len() > MAX_LINE_LEN {
            return Err(format!("line {n} is longer than {MAX_LINE_LEN} bytes"));
        }
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(_controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("line {n} is not hierarchy:controllers:path"));
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("line {n} has no numeric hierarchy ID"));
        }
        let pc = match parse_path(path).map_err(|e| format!("line {n}: {e}"))? {
            PathKind::Container(pc) => pc,
            PathKind::NotPod | PathKind::Ignored => continue,
        };
        match &found {
            Some(prev) if prev.pod_uid != pc.pod_uid => {
                return Err(format!(
                    "names two pods ({} and {}); refusing to pick one",
                    prev.pod_uid, pc.pod_uid
                ));
            }
            Some(prev) if prev.container_id != pc.container_id => {
                return Err(format!(
                    "names two containers of pod {} ({} and {}); refusing to pick one",
                    pc.pod_uid, prev.container_id, pc.container_id
                ));
            }
            Some(_) => {}
            None => found = Some(pc),
        }
    }
    Ok(found)
}

/// One cgroup path.
fn parse_path(path: &str) -> Result<PathKind, String> {
    if !path.starts_with('/') {
        return Err("the path is not absolute".into());
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some(root) = segments.iter().position(|s| is_kubepods(s)) else {
        return Ok(PathKind::NotPod);
    };
    let mut rest = segments[root + 1..].iter();
    let pod_uid = loop {
        let Some(seg) = rest.next() else {
            return Err("a kubepods path without a pod".into());
        };
        if is_qos(seg) {
            continue;
        }
        break pod_segment(seg).ok_or_else(|| {
            format!(
                "{:?} under kubepods is neither a QoS class nor a pod",
                shorten(seg)
            )
        })?;
    };
    let Some(container) = rest.next() else {
        return Err(format!(
            "the process is in pod {pod_uid} but in none of its containers"
        ));
    };
    if container.starts_with("crio-conmon-") {
        return Ok(PathKind::Ignored);
    }
    let container_id = container_segment(container).ok_or_else(|| {
        format!(
            "{:?} in pod {pod_uid} is not a container ID (64 lowercase hex digits)",
            shorten(container)
        )
    })?;
    // Deeper cgroups are the container's own; one looking like another
    // pod is refused rather than trusted or ignored.
    if let Some(other) = rest.find(|s| is_kubepods(s) || pod_segment(s).is_some()) {
        return Err(format!(
            "{:?} below container {container_id} looks like another pod",
            shorten(other)
        ));
    }
    Ok(PathKind::Container(PodContainer {
        pod_uid,
        container_id,
    }))
}

/// `kubepods`, `kubepods.slice`, or a slice nesting it under another
/// cgroup root (`kubelet-kubepods.slice` on a kind node).
fn is_kubepods(seg: &str) -> bool {
    seg == "kubepods" || seg == "kubepods.slice" || seg.ends_with("-kubepods.slice")
}

/// A QoS class cgroup (guaranteed pods sit right under kubepods).
fn is_qos(seg: &str) -> bool {
    matches!(seg, "besteffort" | "burstable")
        || ["kubepods-besteffort.slice", "kubepods-burstable.slice"]
            .iter()
            .any(|q| seg == *q || seg.strip_suffix(q).is_some_and(|p| p.ends_with('-')))
}

/// The pod UID of `pod<uid>` or `…kubepods[-<qos>]-pod<uid_>.slice`.
fn pod_segment(seg: &str) -> Option<String> {
    if let Some(uid) = seg.strip_prefix("pod") {
        return valid_uid(uid).then(|| uid.to_owned());
    }
    let slice = seg.strip_suffix(".slice")?;
    let (parent, uid) = slice.rsplit_once("-pod")?;
    let parent_ok = ["kubepods", "kubepods-besteffort", "kubepods-burstable"]
        .iter()
        .any(|q| parent == *q || parent.strip_suffix(q).is_some_and(|p| p.ends_with('-')));
    // systemd escapes the UID's dashes as underscores.
    if !parent_ok || uid.contains('-') {
        return None;
    }
    let uid = uid.replace('_', "-");
    valid_uid(&uid).then_some(uid)
}

/// A lowercase UUID, or the 32 lowercase hex digits of a static pod.
fn valid_uid(uid: &str) -> bool {
    let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if uid.len() == 32 {
        return hex(uid);
    }
    let groups: Vec<&str> = uid.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && hex(g))
}

/// The container ID of `<id>`, `cri-containerd-<id>.scope`,
/// `crio-<id>[.scope]` or `docker-<id>[.scope]`.
fn container_segment(seg: &str) -> Option<String> {
    let (body, scoped) = match seg.strip_suffix(".scope") {
        Some(b) => (b, true),
        None => (seg, false),
    };
    let id = ["cri-containerd-", "crio-", "docker-"]
        .iter()
        .find_map(|p| body.strip_prefix(p))
        .or((!scoped).then_some(body))?;
    let ok = id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| id.to_owned())
}

/// At most 80 characters of `s`, for error messages.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[path = "cgroup_tests.rs"]
mod tests;
