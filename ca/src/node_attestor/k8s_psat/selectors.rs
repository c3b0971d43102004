//! The agent ID and the `k8s_psat:` selectors of an attested node.

use meshid_identity::{Selector, SpiffeId, TrustDomain};

use super::{NAME, NodeFacts, TokenIdentity};
use crate::node_attestor::{AttestError, AttestedNode};

/// `spiffe://<td>/meshid/agent/k8s_psat/<cluster>/<node uid>`.
pub fn agent_id(td: &TrustDomain, cluster: &str, node_uid: &str) -> Result<SpiffeId, AttestError> {
    td.id_with_path(&format!("/meshid/agent/{NAME}/{cluster}/{node_uid}"))
        .map_err(|_| {
            AttestError::Refused(format!(
                "node uid {:?} cannot be part of a SPIFFE ID",
                node_uid.chars().take(80).collect::<String>()
            ))
        })
}

/// The agent ID and selectors: `cluster`, `agent_ns`, `agent_sa`,
/// `agent_pod_name`, `agent_pod_uid`, `agent_node_name`, `agent_node_uid`
/// and one `agent_node_label:<k>:<v>` per allowed label the node has.
pub fn attested(
    td: &TrustDomain,
    cluster: &str,
    who: &TokenIdentity,
    node: &NodeFacts,
) -> Result<AttestedNode, AttestError> {
    let mut values = vec![
        format!("cluster:{cluster}"),
        format!("agent_ns:{}", who.namespace),
        format!("agent_sa:{}", who.service_account),
        format!("agent_pod_name:{}", who.pod_name),
        format!("agent_pod_uid:{}", who.pod_uid),
        format!("agent_node_name:{}", node.name),
        format!("agent_node_uid:{}", node.uid),
    ];
    values.extend(
        node.labels
            .iter()
            .map(|(k, v)| format!("agent_node_label:{k}:{v}")),
    );
    let selectors = values
        .iter()
        .map(|v| {
            Selector::new(NAME, v).map_err(|e| {
                AttestError::Refused(format!(
                    "selector {NAME}:{} is not valid: {e}",
                    v.chars().take(80).collect::<String>()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AttestedNode {
        tenant: String::new(),
        agent_id: agent_id(td, cluster, &node.uid)?,
        selectors,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn selectors_name_the_agent_pod_and_node() {
        let td: TrustDomain = "example.org".parse().unwrap();
        let who = TokenIdentity {
            namespace: "meshid-system".into(),
            service_account: "meshid-agent".into(),
            pod_name: "agent-x".into(),
            pod_uid: "p-1".into(),
            node_name: Some("node-a".into()),
            node_uid: Some("n-1".into()),
            expires_at: UNIX_EPOCH,
        };
        let node = NodeFacts {
            name: "node-a".into(),
            uid: "0b5e-41".into(),
            labels: vec![("topology.kubernetes.io/zone".into(), "eu-1a".into())],
        };
        let got = attested(&td, "prod", &who, &node).unwrap();
        assert_eq!(
            got.agent_id.as_str(),
            "spiffe://example.org/meshid/agent/k8s_psat/prod/0b5e-41"
        );
        let sels: Vec<String> = got.selectors.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            sels,
            [
                "k8s_psat:cluster:prod",
                "k8s_psat:agent_ns:meshid-system",
                "k8s_psat:agent_sa:meshid-agent",
                "k8s_psat:agent_pod_name:agent-x",
                "k8s_psat:agent_pod_uid:p-1",
                "k8s_psat:agent_node_name:node-a",
                "k8s_psat:agent_node_uid:0b5e-41",
                "k8s_psat:agent_node_label:topology.kubernetes.io/zone:eu-1a",
            ]
        );
        let bad = NodeFacts {
            uid: "a/../b c".into(),
            ..node
        };
        assert!(matches!(
            attested(&td, "prod", &who, &bad),
            Err(AttestError::Refused(_))
        ));
    }
}
