//! The kubelet's pod list, shared by concurrent attestations.
//!
//! One list is reused for `cache_ttl`. A caller that needs a newer one (its
//! pod was not in the last) asks for a list newer than the one it saw.
//! Fetches run one at a time under the cache's lock, so callers waiting for
//! the same refresh all take the list the first of them fetched: a burst of
//! attestations costs one kubelet request, not one each.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::error::K8sError;
use super::pods::PodList;

/// Where pod lists come from (the kubelet; a fake in tests).
#[async_trait::async_trait]
pub trait PodSource: Send + Sync + std::fmt::Debug {
    /// The pods on this node now.
    async fn pods(&self) -> Result<PodList, K8sError>;
}

/// One fetched list.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Counts fetches: a larger one is newer.
    pub generation: u64,
    /// When it was fetched.
    pub at: Instant,
    /// The pods.
    pub pods: Arc<PodList>,
}

/// The cache.
#[derive(Debug)]
pub struct PodCache {
    source: Arc<dyn PodSource>,
    ttl: Duration,
    last: Mutex<Option<Fetched>>,
}

// === impl PodCache ===

impl PodCache {
    /// A cache over `source` reusing a list for `ttl`.
    pub fn new(source: Arc<dyn PodSource>, ttl: Duration) -> Self {
        Self {
            source,
            ttl,
            last: Mutex::new(None),
        }
    }

    /// The cached list if younger than the TTL, else a fresh one.
    pub async fn fresh(&self) -> Result<Fetched, K8sError> {
        let ttl = self.ttl;
        self.get(|f| f.at.elapsed() <= ttl).await
    }

    /// A list fetched after the one numbered `generation`.
    pub async fn newer_than(&self, generation: u64) -> Result<Fetched, K8sError> {
        self.get(|f| f.generation > generation).await
    }

    async fn get(&self, usable: impl Fn(&Fetched) -> bool) -> Result<Fetched, K8sError> {
        let mut last = self.last.lock().await;
        if let Some(f) = last.as_ref().filter(|f| usable(f)) {
            return Ok(f.clone());
        }
        let pods = self.source.pods().await?;
        let generation = last.as_ref().map_or(1, |f| f.generation + 1);
        let fetched = Fetched {
            generation,
            at: Instant::now(),
            pods: Arc::new(pods),
        };
        *last = Some(fetched.clone());
        Ok(fetched)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Debug, Default)]
    struct Counting {
        calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl PodSource for Counting {
        async fn pods(&self) -> Result<PodList, K8sError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(PodList::default())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reused_for_the_ttl_then_fetched_again() {
        let source = Arc::new(Counting::default());
        let cache = PodCache::new(source.clone(), Duration::from_secs(1));
        let a = cache.fresh().await.unwrap();
        let b = cache.fresh().await.unwrap();
        assert_eq!((a.generation, b.generation), (1, 1));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(cache.fresh().await.unwrap().generation, 2);
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
        // A newer list is fetched even inside the TTL.
        assert_eq!(cache.newer_than(2).await.unwrap().generation, 3);
        assert_eq!(source.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn callers_waiting_for_one_refresh_share_one_request() {
        let source = Arc::new(Counting::default());
        let cache = Arc::new(PodCache::new(source.clone(), Duration::from_secs(1)));
        let seen = cache.fresh().await.unwrap().generation;
        let waiters: Vec<_> = (0..50)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.newer_than(seen).await.unwrap().generation })
            })
            .collect();
        for w in waiters {
            assert_eq!(w.await.unwrap(), seen + 1);
        }
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
    }
}
