//! `k8s_psat`: an agent proves the node it runs on with its projected
//! service-account token (audience `meshid-ca`, bound to its pod and node).
//!
//! The payload ([`payload`]) names a configured cluster and carries the
//! token. The token's unverified `exp` and `aud` are checked first for a
//! clear error; then the cluster's TokenReview (`token_review`) or the
//! issuer's keys (`oidc`) verify it. The service account must be in the
//! cluster's allow-list; the bound pod must still exist with the bound uid
//! and run on the bound node, which must exist with the bound uid
//! (`lookup`). The token admits one attestation (`replay`). The agent
//! becomes `spiffe://<td>/meshid/agent/k8s_psat/<cluster>/<node uid>` with
//! the selectors of `selectors`; a restarted agent pod on the same node
//! attests again with a fresh token and keeps its ID.

mod config;
mod https;
mod lookup;
mod oidc;
pub mod payload;
mod replay;
mod selectors;
mod token_review;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use meshid_identity::TrustDomain;

pub use config::{CALL_TIMEOUT, kube_client};
pub use selectors::agent_id;

use self::config::Cluster;
use super::{AttestError, AttestedNode, NodeAttestor};
use crate::config::K8sPsatCluster;
use crate::store::Store;

/// The attestation type name (and selector type).
pub const NAME: &str = meshid_identity::k8s_psat::ATTESTATION_TYPE;

/// Whom a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenIdentity {
    /// The service account's namespace.
    pub(crate) namespace: String,
    /// The service account's name.
    pub(crate) service_account: String,
    /// The bound pod's name.
    pub(crate) pod_name: String,
    /// The bound pod's uid.
    pub(crate) pod_uid: String,
    /// The bound node's name, if the token names it.
    pub(crate) node_name: Option<String>,
    /// The bound node's uid, if the token names it.
    pub(crate) node_uid: Option<String>,
    /// The token's `exp`.
    pub(crate) expires_at: SystemTime,
}

/// The node an agent runs on, as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeFacts {
    /// Its name.
    pub(crate) name: String,
    /// Its uid (the agent ID's last segment).
    pub(crate) uid: String,
    /// Its labels whose keys are allowed, in the configured key order.
    pub(crate) labels: Vec<(String, String)>,
}

/// Attests agents of the configured clusters.
pub struct K8sPsatAttestor {
    store: Arc<dyn Store>,
    trust_domain: TrustDomain,
    clusters: BTreeMap<String, Cluster>,
}

impl fmt::Debug for K8sPsatAttestor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("K8sPsatAttestor")
            .field("trust_domain", &self.trust_domain)
            .field("clusters", &self.clusters.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

// === impl K8sPsatAttestor ===

impl K8sPsatAttestor {
    /// Attests agents of `trust_domain` from `clusters` (checked settings),
    /// recording used tokens in `store`. Nothing is contacted until the
    /// first attestation.
    pub fn new<'a>(
        store: Arc<dyn Store>,
        trust_domain: TrustDomain,
        clusters: impl IntoIterator<Item = (&'a String, &'a K8sPsatCluster)>,
    ) -> Self {
        Self {
            store,
            trust_domain,
            clusters: clusters
                .into_iter()
                .map(|(name, c)| (name.clone(), Cluster::new(name, c)))
                .collect(),
        }
    }

    async fn verify(
        &self,
        cluster: &Cluster,
        token: &str,
        now: SystemTime,
    ) -> Result<TokenIdentity, AttestError> {
        let audience = &cluster.settings.audience;
        let expires_at = payload::unverified_claims(token)?.precheck(now, audience)?;
        match &cluster.oidc {
            Some(oidc) => oidc.verify(token, audience, now).await,
            None => token_review::review(cluster, token, expires_at).await,
        }
    }
}

#[async_trait]
impl NodeAttestor for K8sPsatAttestor {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn attest(&self, payload: &[u8], now: SystemTime) -> Result<AttestedNode, AttestError> {
        let p = payload::parse(payload)?;
        let cluster = self.clusters.get(&p.cluster).ok_or_else(|| {
            AttestError::Refused(format!(
                "cluster {:?} is not configured on this CA; configured: {:?}",
                p.cluster,
                self.clusters.keys().collect::<Vec<_>>()
            ))
        })?;
        let who = self.verify(cluster, &p.token, now).await?;
        let sa = format!("{}:{}", who.namespace, who.service_account);
        if !cluster.settings.service_account_allow_list.contains(&sa) {
            return Err(AttestError::Refused(format!(
                "service account {sa} is not in cluster {}'s service_account_allow_list {:?}",
                cluster.name, cluster.settings.service_account_allow_list
            )));
        }
        let node = if cluster.reads_api() {
            lookup::node(cluster, &who).await?
        } else {
            lookup::from_token(&cluster.name, &who)?
        };
        replay::record_once(self.store.as_ref(), &p.token, who.expires_at).await?;
        let attested = selectors::attested(&self.trust_domain, &cluster.name, &who, &node)?;
        tracing::debug!(
            cluster = %cluster.name,
            pod = %format!("{}/{}", who.namespace, who.pod_name),
            node = %node.name,
            "k8s_psat token verified"
        );
        Ok(attested)
    }
}
