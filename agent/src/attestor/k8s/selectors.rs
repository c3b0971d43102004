//! The `k8s:` selectors of a pod's container.
//!
//! | selector | from |
//! |---|---|
//! | `k8s:ns:N` | `metadata.namespace` |
//! | `k8s:sa:N` | `spec.serviceAccountName` |
//! | `k8s:pod-name:N`, `k8s:pod-uid:U` | `metadata.name`, `metadata.uid` |
//! | `k8s:pod-label:K:V` | each of `metadata.labels` |
//! | `k8s:pod-image:I` | every container's spec `image` and status `imageID` |
//! | `k8s:container-name:N` | the caller's container |
//! | `k8s:container-image:I` | its spec `image` and status `imageID` |
//! | `k8s:node-name:N` | `spec.nodeName` |

use meshid_identity::Selector;

use super::pods::{ContainerStatus, Pod};

/// Selector type produced by the k8s attestor.
pub const KIND: &str = "k8s";

/// The selectors of `status`'s container in `pod`, sorted, no duplicates.
pub fn of(pod: &Pod, status: &ContainerStatus) -> Vec<Selector> {
    let mut out = Vec::new();
    let mut push = |value: String| push(&mut out, value);
    let (meta, spec) = (&pod.metadata, &pod.spec);
    push(format!("ns:{}", meta.namespace));
    if !spec.service_account_name.is_empty() {
        push(format!("sa:{}", spec.service_account_name));
    }
    push(format!("pod-name:{}", meta.name));
    push(format!("pod-uid:{}", meta.uid));
    for (k, v) in &meta.labels {
        push(format!("pod-label:{k}:{v}"));
    }
    let images = pod
        .containers()
        .map(|c| c.image.as_str())
        .chain(pod.statuses().map(|s| s.image_id.as_str()));
    for image in images.filter(|i| !i.is_empty()) {
        push(format!("pod-image:{image}"));
    }
    push(format!("container-name:{}", status.name));
    let spec_image = pod
        .containers()
        .find(|c| c.name == status.name)
        .map(|c| c.image.as_str());
    for image in [spec_image, Some(status.image_id.as_str())]
        .into_iter()
        .flatten()
        .filter(|i| !i.is_empty())
    {
        push(format!("container-image:{image}"));
    }
    if !spec.node_name.is_empty() {
        push(format!("node-name:{}", spec.node_name));
    }
    out.sort();
    out.dedup();
    out
}

/// Adds a `k8s:` selector; a value that is not a valid selector (control
/// characters, over-long) is left out, which only narrows what matches.
fn push(out: &mut Vec<Selector>, value: String) {
    match Selector::new(KIND, &value) {
        Ok(s) => out.push(s),
        Err(e) => tracing::warn!(error = %e, "leaving out an unusable k8s selector"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_selector_of_the_contract() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-1", "namespace": "payments", "uid": "u-1",
                         "labels": {"app": "api", "tier": "a:b"}},
            "spec": {"serviceAccountName": "api", "nodeName": "node-1",
                     "containers": [{"name": "app", "image": "app:1"}, {"name": "side", "image": "envoy:1"}],
                     "initContainers": [{"name": "init", "image": "init:1"}]},
            "status": {"containerStatuses": [
                {"name": "app", "image": "docker.io/library/app:1", "imageID": "docker.io/library/app@sha256:aa", "containerID": "containerd://1"},
                {"name": "side", "image": "envoy:1", "imageID": "envoy@sha256:bb", "containerID": "containerd://2"}]}
        }))
        .unwrap();
        let status = &pod.status.container_statuses[0];
        let got: Vec<String> = of(&pod, status).iter().map(|s| s.to_string()).collect();
        let want = [
            "k8s:container-image:app:1",
            "k8s:container-image:docker.io/library/app@sha256:aa",
            "k8s:container-name:app",
            "k8s:node-name:node-1",
            "k8s:ns:payments",
            "k8s:pod-image:app:1",
            "k8s:pod-image:docker.io/library/app@sha256:aa",
            "k8s:pod-image:envoy:1",
            "k8s:pod-image:envoy@sha256:bb",
            "k8s:pod-image:init:1",
            "k8s:pod-label:app:api",
            "k8s:pod-label:tier:a:b",
            "k8s:pod-name:api-1",
            "k8s:pod-uid:u-1",
            "k8s:sa:api",
        ];
        assert_eq!(got, want);
    }
}
