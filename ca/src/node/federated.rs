//! Federated bundles for `Sync`, read from the store once and shared by
//! every agent's every page until they change.
//!
//! A bundle set through this CA (the admin API calls
//! [`FederatedBundles::invalidate`] after writing) is seen by the next
//! `Sync`. A bundle written by another CA replica sharing the database is
//! served by this replica's `Sync` at most [`FederatedBundles::MAX_AGE`]
//! (5 s) after the write, plus one store read: no snapshot is served once
//! it is that old, and the newest one that can miss the write was read
//! just before it. Agents have it at their first sync after that (within
//! their `sync_interval`). This is the one cache of the node API: entries,
//! agents, bans and join tokens are read from the store on every call.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use meshid_identity::TrustDomain;
use meshid_proto::ca;

use super::convert;
use crate::store::{Store, StoreError};

/// Foreign trust domain → its bundle, as sent to agents.
pub type BundleMap = BTreeMap<TrustDomain, ca::Bundle>;

/// A shared, invalidatable cache of the stored federated bundles. Cheap to
/// clone; clones share one cache.
#[derive(Clone)]
pub struct FederatedBundles {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    own: TrustDomain,
    max_age: Duration,
    /// Bumped by every invalidation; a snapshot of an older generation is stale.
    generation: AtomicU64,
    snapshot: Mutex<Option<Snapshot>>,
    /// Held while reloading so concurrent callers wait for one read.
    reload: tokio::sync::Mutex<()>,
}

struct Snapshot {
    generation: u64,
    loaded_at: SystemTime,
    bundles: Arc<BundleMap>,
}

// === impl FederatedBundles ===

impl FederatedBundles {
    /// How long a snapshot is served before the store is read again: the
    /// bound on how late a bundle written by another replica shows up here
    /// (the same as the default `[ha] refresh_interval`, the bound for the
    /// CA's own bundle and key journal).
    pub const MAX_AGE: Duration = Duration::from_secs(5);

    /// A cache over `store` leaving out `own`, the CA's own trust domain
    /// (its bundle comes from the authority, not from here).
    pub fn new(store: Arc<dyn Store>, own: TrustDomain) -> Self {
        Self::with_max_age(store, own, Self::MAX_AGE)
    }

    /// Like [`FederatedBundles::new`] with another maximum age.
    pub fn with_max_age(store: Arc<dyn Store>, own: TrustDomain, max_age: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                own,
                max_age,
                generation: AtomicU64::new(0),
                snapshot: Mutex::new(None),
                reload: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Marks the cache stale: the next [`FederatedBundles::get`] reads the
    /// store. Call after writing a bundle.
    pub fn invalidate(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The federated bundles as of `now`: the cached snapshot while it is
    /// current and younger than the maximum age, else a fresh read (one
    /// store query). Bundles whose stored JSON no longer parses are left out.
    pub async fn get(&self, now: SystemTime) -> Result<Arc<BundleMap>, StoreError> {
        if let Some(current) = self.current(now) {
            return Ok(current);
        }
        let _reloading = self.inner.reload.lock().await;
        if let Some(current) = self.current(now) {
            return Ok(current);
        }
        // Read the generation before the store: a write that lands during
        // the read bumps it, so this snapshot is then already stale.
        let generation = self.inner.generation.load(Ordering::Acquire);
        let bundles: BundleMap = self
            .inner
            .store
            .list_bundles()
            .await?
            .iter()
            .filter(|b| b.trust_domain != self.inner.own)
            .filter_map(|b| Some((b.trust_domain.clone(), convert::stored_bundle(b)?)))
            .collect();
        let bundles = Arc::new(bundles);
        *self.lock() = Some(Snapshot {
            generation,
            loaded_at: now,
            bundles: Arc::clone(&bundles),
        });
        Ok(bundles)
    }

    /// The snapshot, if it is of the current generation and young enough.
    /// A clock that went backwards counts as too old.
    fn current(&self, now: SystemTime) -> Option<Arc<BundleMap>> {
        let snapshot = self.lock();
        let s = snapshot.as_ref()?;
        let age = now.duration_since(s.loaded_at).ok()?;
        let fresh = s.generation == self.inner.generation.load(Ordering::Acquire)
            && age < self.inner.max_age;
        fresh.then(|| Arc::clone(&s.bundles))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Snapshot>> {
        self.inner
            .snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for FederatedBundles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FederatedBundles")
            .field("own", &self.inner.own)
            .field("max_age", &self.inner.max_age)
            .field("generation", &self.inner.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::UNIX_EPOCH;

    use meshid_identity::TrustBundle;

    use super::*;
    use crate::store::{SqliteStore, StoredBundle};

    fn td(s: &str) -> TrustDomain {
        TrustDomain::new(s).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    /// Writes a bundle for `domain` with `sequence` straight into the store
    /// (as another replica would), bypassing the cache.
    async fn write(store: &Arc<dyn Store>, domain: &str, sequence: u64) {
        let mut b = TrustBundle::new(td(domain));
        b.sequence = sequence;
        b.jwt_authorities.push(meshid_identity::JwtAuthority {
            key_id: format!("k{sequence}"),
            public_key_der: meshid_identity::PrivateKey::generate_p256()
                .unwrap()
                .public_key_der(),
            expires_at: None,
        });
        let stored = StoredBundle {
            trust_domain: td(domain),
            spiffe_json: b.to_spiffe_json().into_bytes(),
            sequence: i64::try_from(sequence).unwrap(),
            updated_at: at(0),
        };
        store.put_bundle(&stored, None).await.unwrap();
    }

    fn key_id(map: &BundleMap, domain: &str) -> String {
        map[&td(domain)].jwt_authorities[0].key_id.clone()
    }

    #[tokio::test]
    async fn serves_one_read_until_invalidated_or_too_old() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        write(&store, "partner.org", 1).await;
        write(&store, "example.org", 1).await;
        let cache = FederatedBundles::with_max_age(
            Arc::clone(&store),
            td("example.org"),
            Duration::from_secs(10),
        );

        let first = cache.get(at(0)).await.unwrap();
        assert_eq!(key_id(&first, "partner.org"), "k1");
        assert!(
            !first.contains_key(&td("example.org")),
            "the own trust domain is not a federated bundle"
        );

        // A write the cache is not told about is not read while the
        // snapshot is young: the same snapshot is served, no store read.
        write(&store, "partner.org", 2).await;
        let cached = cache.get(at(9)).await.unwrap();
        assert!(Arc::ptr_eq(&first, &cached));

        // Invalidation makes the very next call read the store.
        cache.invalidate();
        let fresh = cache.get(at(9)).await.unwrap();
        assert_eq!(key_id(&fresh, "partner.org"), "k2");

        // Age alone also expires it (a write by another replica).
        write(&store, "partner.org", 3).await;
        assert_eq!(
            key_id(&cache.get(at(18)).await.unwrap(), "partner.org"),
            "k2"
        );
        assert_eq!(
            key_id(&cache.get(at(19)).await.unwrap(), "partner.org"),
            "k3"
        );

        // A clock that jumps backwards forces a read rather than trusting
        // the snapshot.
        write(&store, "partner.org", 4).await;
        assert_eq!(
            key_id(&cache.get(at(5)).await.unwrap(), "partner.org"),
            "k4"
        );
    }
}
