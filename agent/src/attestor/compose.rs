//! Several workload attestors as one: the caller's selectors are the union
//! of theirs (`unix:` ∪ `k8s:`), and any one failing fails the attestation.

use std::sync::Arc;

use meshid_identity::Selector;

use super::{AttestError, PeerInfo, WorkloadAttestor};

/// Runs every attestor on each caller, concurrently.
#[derive(Debug, Clone)]
pub struct ComposedAttestor {
    parts: Vec<Arc<dyn WorkloadAttestor>>,
}

// === impl ComposedAttestor ===

impl ComposedAttestor {
    /// All of `parts`.
    pub fn new(parts: Vec<Arc<dyn WorkloadAttestor>>) -> Self {
        Self { parts }
    }
}

#[async_trait::async_trait]
impl WorkloadAttestor for ComposedAttestor {
    async fn attest(&self, peer: &PeerInfo) -> Result<Vec<Selector>, AttestError> {
        let all = futures::future::try_join_all(self.parts.iter().map(|a| a.attest(peer))).await?;
        let mut out: Vec<Selector> = all.into_iter().flatten().collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(Result<Vec<&'static str>, &'static str>);

    #[async_trait::async_trait]
    impl WorkloadAttestor for Fixed {
        async fn attest(&self, _peer: &PeerInfo) -> Result<Vec<Selector>, AttestError> {
            match &self.0 {
                Ok(v) => Ok(v.iter().map(|s| s.parse().unwrap()).collect()),
                Err(e) => Err(AttestError::Task((*e).into())),
            }
        }
    }

    fn peer() -> PeerInfo {
        PeerInfo {
            pid: 1,
            uid: 0,
            gid: 0,
            start_time: None,
        }
    }

    #[tokio::test]
    async fn selectors_are_the_union_and_an_error_in_any_fails() {
        let both = ComposedAttestor::new(vec![
            Arc::new(Fixed(Ok(vec!["unix:uid:0", "unix:gid:0"]))),
            Arc::new(Fixed(Ok(vec!["k8s:ns:payments", "unix:uid:0"]))),
        ]);
        let got: Vec<String> = both
            .attest(&peer())
            .await
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(got, ["k8s:ns:payments", "unix:gid:0", "unix:uid:0"]);

        let failing = ComposedAttestor::new(vec![
            Arc::new(Fixed(Ok(vec!["unix:uid:0"]))),
            Arc::new(Fixed(Err("kubelet down"))),
        ]);
        let err = failing.attest(&peer()).await.unwrap_err();
        assert!(err.to_string().contains("kubelet down"), "{err}");
    }
}
