//! The part of the kubelet's `/pods` answer (a `v1.PodList`) the attestor
//! reads. Unknown fields are ignored; missing ones are empty.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `v1.PodList`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodList {
    /// The pods on the node.
    #[serde(default)]
    pub items: Vec<Pod>,
}

/// `v1.Pod`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Pod {
    /// Name, namespace, UID, labels.
    pub metadata: PodMeta,
    /// What was asked for.
    pub spec: PodSpec,
    /// What runs.
    pub status: PodStatus,
}

/// `v1.ObjectMeta`, the fields used.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PodMeta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
}

/// `v1.PodSpec`, the fields used.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    /// `spec.serviceAccountName`.
    pub service_account_name: String,
    /// `spec.nodeName`.
    pub node_name: String,
    /// `spec.containers`.
    pub containers: Vec<Container>,
    /// `spec.initContainers`.
    pub init_containers: Vec<Container>,
    /// `spec.ephemeralContainers`.
    pub ephemeral_containers: Vec<Container>,
}

/// `v1.Container` (and `v1.EphemeralContainer`), the fields used.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Container {
    /// `name`.
    pub name: String,
    /// `image` as written in the spec.
    pub image: String,
}

/// `v1.PodStatus`, the fields used.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStatus {
    /// `status.containerStatuses`.
    pub container_statuses: Vec<ContainerStatus>,
    /// `status.initContainerStatuses`.
    pub init_container_statuses: Vec<ContainerStatus>,
    /// `status.ephemeralContainerStatuses`.
    pub ephemeral_container_statuses: Vec<ContainerStatus>,
}

/// `v1.ContainerStatus`, the fields used.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStatus {
    /// The container's name in the spec.
    pub name: String,
    /// The image the runtime reports.
    pub image: String,
    /// `imageID`: the image's digest reference.
    #[serde(rename = "imageID")]
    pub image_id: String,
    /// `containerID`: `<runtime>://<id>`, empty until it started.
    #[serde(rename = "containerID")]
    pub container_id: String,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// The pod and the container's status.
    Found(&'a Pod, &'a ContainerStatus),
    /// No pod with that UID.
    NoPod,
    /// The pod, but no container with that ID (yet).
    NoContainer(&'a Pod),
}

// === impl PodList ===

impl PodList {
    /// The pod with `uid` and its container with `container_id` (64 hex
    /// digits; the status's `<runtime>://` prefix is ignored).
    pub fn find(&self, uid: &str, container_id: &str) -> Lookup<'_> {
        let Some(pod) = self.items.iter().find(|p| p.metadata.uid == uid) else {
            return Lookup::NoPod;
        };
        match pod
            .statuses()
            .find(|s| runtime_id(&s.container_id) == Some(container_id))
        {
            Some(status) => Lookup::Found(pod, status),
            None => Lookup::NoContainer(pod),
        }
    }
}

// === impl Pod ===

impl Pod {
    /// Every container status: regular, init and ephemeral.
    pub fn statuses(&self) -> impl Iterator<Item = &ContainerStatus> {
        let s = &self.status;
        s.container_statuses
            .iter()
            .chain(&s.init_container_statuses)
            .chain(&s.ephemeral_container_statuses)
    }

    /// Every container in the spec: regular, init and ephemeral.
    pub fn containers(&self) -> impl Iterator<Item = &Container> {
        let s = &self.spec;
        s.containers
            .iter()
            .chain(&s.init_containers)
            .chain(&s.ephemeral_containers)
    }
}

/// The ID of `<runtime>://<id>`; `None` without a runtime prefix.
fn runtime_id(s: &str) -> Option<&str> {
    let (runtime, id) = s.split_once("://")?;
    (!runtime.is_empty()).then_some(id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CID: &str = "14011c7d92a9e513dfd69211da0413dbf319a5e45a02b354ba6e98e10272542d";

    fn list() -> PodList {
        serde_json::from_value(serde_json::json!({
            "kind": "PodList", "apiVersion": "v1", "metadata": {},
            "items": [
                {"metadata": {"name": "other", "namespace": "x", "uid": "u-0"}},
                {
                    "metadata": {"name": "api-1", "namespace": "payments", "uid": "u-1",
                                 "labels": {"app": "api"}, "resourceVersion": "7"},
                    "spec": {"serviceAccountName": "api", "nodeName": "node-1",
                             "containers": [{"name": "app", "image": "app:1"}],
                             "initContainers": [{"name": "init", "image": "init:1"}]},
                    "status": {"phase": "Running",
                               "containerStatuses": [{"name": "app", "image": "docker.io/app:1",
                                   "imageID": "docker.io/app@sha256:ab", "containerID": format!("containerd://{CID}")}],
                               "initContainerStatuses": [{"name": "init", "image": "init:1", "imageID": "",
                                   "containerID": "containerd://0000"}]}
                }
            ]
        }))
        .unwrap()
    }

    #[test]
    fn finds_pod_by_uid_and_container_by_runtime_id() {
        let l = list();
        match l.find("u-1", CID) {
            Lookup::Found(pod, status) => {
                assert_eq!(pod.metadata.name, "api-1");
                assert_eq!(status.name, "app");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(l.find("u-1", "0000"), Lookup::Found(_, s) if s.name == "init"));
        assert!(matches!(
            l.find("u-1", &CID.replace('1', "2")),
            Lookup::NoContainer(_)
        ));
        assert!(matches!(l.find("u-0", CID), Lookup::NoContainer(_)));
        assert!(matches!(l.find("u-9", CID), Lookup::NoPod));
    }

    #[test]
    fn a_container_id_without_runtime_prefix_never_matches() {
        let mut l = list();
        l.items[1].status.container_statuses[0].container_id = CID.into();
        assert!(matches!(l.find("u-1", CID), Lookup::NoContainer(_)));
        l.items[1].status.container_statuses[0].container_id = format!("://{CID}");
        assert!(matches!(l.find("u-1", CID), Lookup::NoContainer(_)));
    }
}
