//! The `k8s` workload attestor: which pod and container the caller runs in,
//! from what the kernel says (`/proc/<pid>/cgroup`) and what the kubelet
//! lists, never from anything the workload claims.
//!
//! ```text
//! PeerInfo pid ─▶ /proc/<pid>/cgroup ─▶ pod UID + container ID   (cgroup)
//!                  (start time re-checked after the read)
//!            ─▶ kubelet GET /pods (cached) ─▶ pod + container    (cache, kubelet, pods)
//!            ─▶ k8s:ns:…, k8s:sa:…, …                           (selectors)
//! ```
//!
//! A process in no pod gets no `k8s:` selectors. A pod or container not
//! listed yet (it just started) is looked up again every `retry_interval`
//! in a freshly fetched list, until `max_wait`; then the attestation fails.

pub mod cache;
pub mod cgroup;
mod config;
pub mod error;
pub mod kubelet;
pub mod pods;
pub mod selectors;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use meshid_identity::Selector;
use tokio::time::Instant;

use super::procfs::ProcFs;
use super::{AttestError, PeerInfo, ProcessIdentity, WorkloadAttestor};
use cache::{PodCache, PodSource};
pub use config::{
    DEFAULT_KUBELET_CA_PATH, DEFAULT_KUBELET_URL, DEFAULT_TOKEN_PATH, K8sAttestorConfig,
};
pub use error::K8sError;
use kubelet::KubeletClient;
use pods::Lookup;

/// Attests processes in Kubernetes pods. Cheap to clone.
#[derive(Debug, Clone)]
pub struct K8sAttestor {
    proc_root: PathBuf,
    cache: Arc<PodCache>,
    retry_interval: Duration,
    max_wait: Duration,
}

// === impl K8sAttestor ===

impl K8sAttestor {
    /// An attestor asking the kubelet of `config` about the real `/proc`.
    pub fn new(config: &K8sAttestorConfig) -> Result<Self, K8sError> {
        let client = KubeletClient::new(config)?;
        Ok(Self::with_source(Arc::new(client), config))
    }

    /// An attestor taking pod lists from `source` (timings from `config`).
    pub fn with_source(source: Arc<dyn PodSource>, config: &K8sAttestorConfig) -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
            cache: Arc::new(PodCache::new(source, config.cache_ttl)),
            retry_interval: config.retry_interval,
            max_wait: config.max_wait,
        }
    }

    /// Reads processes under `root` instead of `/proc`.
    pub fn with_proc_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.proc_root = root.into();
        self
    }

    /// The pod and container of `peer`, `None` outside pods.
    fn pod_container_blocking(
        &self,
        peer: &PeerInfo,
    ) -> Result<Option<cgroup::PodContainer>, AttestError> {
        let pid = peer.pid;
        let start_time = match peer.start_time {
            Some(t) => t,
            None => ProcessIdentity::capture(&self.proc_root, pid, None)?.start_time(),
        };
        let (path, text) = ProcFs::new(&self.proc_root).cgroup(pid)?;
        // The file read must be the connected process's.
        ProcessIdentity::capture(&self.proc_root, pid, Some(start_time))?;
        cgroup::parse(&text).map_err(|reason| AttestError::ProcParse { path, reason })
    }

    /// The selectors of the container `pc`, waiting for the kubelet to
    /// list it for at most `max_wait`.
    pub async fn selectors_of(&self, pc: &cgroup::PodContainer) -> Result<Vec<Selector>, K8sError> {
        let started = Instant::now();
        let mut list = self.cache.fresh().await?;
        loop {
            let missing = match list.pods.find(&pc.pod_uid, &pc.container_id) {
                Lookup::Found(pod, status) => return Ok(selectors::of(pod, status)),
                Lookup::NoPod => format!("pod {}", pc.pod_uid),
                Lookup::NoContainer(pod) => format!(
                    "container {} of pod {}/{} ({})",
                    pc.container_id, pod.metadata.namespace, pod.metadata.name, pc.pod_uid
                ),
            };
            let waited = started.elapsed();
            if waited + self.retry_interval > self.max_wait {
                return Err(K8sError::NotListed {
                    what: missing,
                    waited,
                });
            }
            tracing::debug!(%missing, ?waited, "not listed by the kubelet yet; asking again");
            tokio::time::sleep(self.retry_interval).await;
            list = self.cache.newer_than(list.generation).await?;
        }
    }
}

#[async_trait::async_trait]
impl WorkloadAttestor for K8sAttestor {
    async fn attest(&self, peer: &PeerInfo) -> Result<Vec<Selector>, AttestError> {
        let this = self.clone();
        let p = *peer;
        let pc = tokio::task::spawn_blocking(move || this.pod_container_blocking(&p))
            .await
            .map_err(|e| AttestError::Task(e.to_string()))??;
        match pc {
            None => Ok(Vec::new()),
            Some(pc) => Ok(self.selectors_of(&pc).await?),
        }
    }
}

#[cfg(test)]
#[path = "k8s/tests.rs"]
mod tests;
