//! The API checks after a token verified: its pod still exists with the
//! bound uid, runs on the node the token names (if it names one), and that
//! node exists with the bound uid. Gives the node's name, uid and allowed
//! labels.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;

use super::config::{Cluster, bounded};
use super::{NodeFacts, TokenIdentity};
use crate::node_attestor::AttestError;

/// Reads the agent's pod and node from `cluster`'s API.
pub async fn node(cluster: &Cluster, who: &TokenIdentity) -> Result<NodeFacts, AttestError> {
    let client = cluster.client().await?;
    let (ns, name) = (&who.namespace, &who.pod_name);
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let pod = bounded(&cluster.name, "reading the agent's pod", pods.get_opt(name))
        .await?
        .ok_or_else(|| AttestError::Refused(format!("pod {ns}/{name} no longer exists")))?;
    let uid = pod.metadata.uid.unwrap_or_default();
    if uid != who.pod_uid {
        return Err(AttestError::Refused(format!(
            "pod {ns}/{name} was replaced (its uid is {uid}, the token is bound to uid {})",
            who.pod_uid
        )));
    }
    let node_name = pod
        .spec
        .and_then(|s| s.node_name)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AttestError::Refused(format!("pod {ns}/{name} is not on a node")))?;
    if let Some(bound) = &who.node_name
        && *bound != node_name
    {
        return Err(AttestError::Refused(format!(
            "token is bound to node {bound} but pod {ns}/{name} runs on node {node_name}"
        )));
    }
    let nodes = Api::<Node>::all(client.clone());
    let node = bounded(
        &cluster.name,
        "reading the agent's node",
        nodes.get_opt(&node_name),
    )
    .await?
    .ok_or_else(|| AttestError::Refused(format!("node {node_name} no longer exists")))?;
    let node_uid = node
        .metadata
        .uid
        .filter(|u| !u.is_empty())
        .ok_or_else(|| AttestError::Refused(format!("node {node_name} has no uid")))?;
    if let Some(bound) = &who.node_uid
        && *bound != node_uid
    {
        return Err(AttestError::Refused(format!(
            "node {node_name} was replaced (its uid is {node_uid}, the token is bound to uid \
             {bound})"
        )));
    }
    let labels = node.metadata.labels.unwrap_or_default();
    let labels = cluster
        .settings
        .allowed_node_label_keys
        .iter()
        .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    Ok(NodeFacts {
        name: node_name,
        uid: node_uid,
        labels,
    })
}

/// The node as the token alone names it (OIDC without API access).
pub fn from_token(cluster: &str, who: &TokenIdentity) -> Result<NodeFacts, AttestError> {
    match (&who.node_name, &who.node_uid) {
        (Some(name), Some(uid)) => Ok(NodeFacts {
            name: name.clone(),
            uid: uid.clone(),
            labels: Vec::new(),
        }),
        _ => Err(AttestError::Refused(format!(
            "token names no node (kubernetes.io.node claims, Kubernetes 1.30+); configure a \
             kubeconfig for cluster {cluster} so the CA can read the agent's pod"
        ))),
    }
}
