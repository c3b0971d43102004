//! The CA's current signing authority, swappable while the CA serves:
//! [`CurrentAuthority`].
//!
//! Every part of the CA that signs or serves the bundle (node API, its own
//! serving certificate, readiness, metrics) reads the authority through this
//! handle on each use, so a newly activated key is used at once. Readers
//! never lock: [`CurrentAuthority::load`] is an atomic pointer load
//! (`arc-swap`).
//!
//! The authority is this replica's active X.509 CA and active JWT key, as
//! the rotation engine ([`crate::rotation`]) makes them. The bundle served
//! is derived from the key journal of every replica (prepared keys before
//! they sign, retired ones until what they signed has expired), plus the JWT
//! keys downstream CAs published ([`CurrentAuthority::publish_jwt_authority`],
//! kept in `published.rs`), written to the store with the sequence
//! compare-and-swap ([`CurrentAuthority::publish`]); each replica serves the
//! newest stored one ([`CurrentAuthority::serve_bundle`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use meshid_identity::{JwtAuthority, TrustBundle};

use super::published::{PublishKeyError, PublishedKeys};
use super::{Authority, AuthorityError, IssuanceError};
use crate::keymanager::KeyManager;
use crate::metrics::CaMetrics;
use crate::rotation::Journal;
use crate::store::{Store, StoreError, StoredBundle};
use crate::upstream::UpstreamAuthority;

/// How often a bundle write is retried after another writer's.
const PUBLISH_ATTEMPTS: usize = 5;

/// The CA's current authority and the bundle it serves, cheap to clone.
#[derive(Clone)]
pub struct CurrentAuthority {
    inner: Arc<Inner>,
}

struct Inner {
    authority: ArcSwap<Authority>,
    bundle: ArcSwap<TrustBundle>,
    keys: ArcSwap<SigningKeys>,
    store: Arc<dyn Store>,
    metrics: CaMetrics,
    /// Serialises bundle writers; readers never take it.
    writer: tokio::sync::Mutex<()>,
}

/// Which X.509 CA keys sign now and which are tainted (every replica's),
/// by key ID: what agents compare their SVIDs' AuthorityKeyIdentifier with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningKeys {
    /// Key IDs (hex) of the active X.509 slots.
    pub active: Vec<String>,
    /// Key IDs (hex) of tainted X.509 slots.
    pub tainted: Vec<String>,
    /// `[rotation] reissue_spread`.
    pub reissue_spread: Duration,
}

/// Why a replacement authority is not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CandidateError {
    /// The material could not be obtained or is refused, as at start-up.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// It would sign SVIDs that do not verify against its own bundle.
    #[error(transparent)]
    Issuance(#[from] IssuanceError),
}

// === impl CurrentAuthority ===

impl CurrentAuthority {
    /// `authority` as the current one, serving its own bundle until the
    /// first [`CurrentAuthority::publish`].
    pub fn new(authority: Authority, store: Arc<dyn Store>, metrics: CaMetrics) -> Self {
        metrics.set_ca_expiry(authority.not_after());
        Self {
            inner: Arc::new(Inner {
                bundle: ArcSwap::from_pointee(authority.bundle().clone()),
                authority: ArcSwap::from_pointee(authority),
                keys: ArcSwap::from_pointee(SigningKeys::default()),
                store,
                metrics,
                writer: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The authority to sign with now.
    pub fn load(&self) -> Arc<Authority> {
        self.inner.authority.load_full()
    }

    /// The authority that signs the node API's own serving certificate:
    /// the current one (its root was in the bundle before it was activated).
    pub fn serving(&self, _now: SystemTime) -> Arc<Authority> {
        self.load()
    }

    /// The trust bundle to serve now: every replica's published keys and
    /// the JWT keys of downstream CAs, with the stored sequence.
    pub fn bundle(&self) -> Arc<TrustBundle> {
        self.inner.bundle.load_full()
    }

    /// The X.509 keys signing now and the tainted ones (for Sync).
    pub fn signing_keys(&self) -> Arc<SigningKeys> {
        self.inner.keys.load_full()
    }

    /// A replacement read from `upstream` exactly as at start-up, with the
    /// current issuance limits and JWT key, and checked to sign SVIDs that
    /// verify against its own bundle (what agents do).
    pub fn candidate(
        &self,
        upstream: &dyn UpstreamAuthority,
        keys: &dyn KeyManager,
        now: SystemTime,
    ) -> Result<Authority, CandidateError> {
        let config = self.load().config().clone();
        let material = upstream
            .obtain(&config.trust_domain, keys, now)
            .map_err(AuthorityError::from)?;
        let jwt = self.load().jwt_private().clone();
        let new = Authority::assemble(config, upstream.kind(), material, &jwt, now)?;
        new.check_issuance(now)?;
        Ok(new)
    }

    /// Makes `authority` the one that signs (the rotation engine's
    /// activation).
    pub(crate) fn swap(&self, authority: Authority) {
        self.inner.metrics.set_ca_expiry(authority.not_after());
        self.inner.authority.store(Arc::new(authority));
    }

    /// Serves `bundle` if it is newer (a higher sequence) than the one
    /// served; true if it did.
    pub(crate) fn serve_bundle(&self, bundle: TrustBundle) -> bool {
        let current = self.bundle();
        if bundle.sequence < current.sequence || *current == bundle {
            return false;
        }
        self.inner.bundle.store(Arc::new(bundle));
        true
    }

    /// Sets the keys Sync reports.
    pub(crate) fn set_signing_keys(&self, keys: SigningKeys) {
        if *self.signing_keys() != keys {
            self.inner.keys.store(Arc::new(keys));
        }
    }

    /// Derives the bundle from the key journal, stores it (the sequence
    /// moves only when its content changed) and serves it.
    pub async fn publish(&self, now: SystemTime) -> Result<Arc<TrustBundle>, StoreError> {
        let _one = self.inner.writer.lock().await;
        let bundle = self.write_bundle(None, now).await.map_err(|e| match e {
            PublishKeyError::Store(e) => e,
            other => StoreError::Invalid(other.to_string()),
        })?;
        self.serve_bundle(bundle);
        Ok(self.bundle())
    }

    /// Publishes another CA's JWT key (a downstream CA's) in this CA's
    /// bundle until `key.expires_at`: checked, bounded to
    /// [`super::MAX_PUBLISHED_KEYS`], replacing a key of the same ID, stored
    /// (the bundle sequence moves) and served at once.
    pub async fn publish_jwt_authority(
        &self,
        key: JwtAuthority,
        now: SystemTime,
    ) -> Result<(), PublishKeyError> {
        let _one = self.inner.writer.lock().await;
        let bundle = self.write_bundle(Some(key), now).await?;
        self.serve_bundle(bundle);
        Ok(())
    }

    /// The bundle of the journal (and `add`), written with the sequence
    /// compare-and-swap, re-derived when another writer came first.
    async fn write_bundle(
        &self,
        add: Option<JwtAuthority>,
        now: SystemTime,
    ) -> Result<TrustBundle, PublishKeyError> {
        let store = self.inner.store.as_ref();
        let authority = self.load();
        let td = authority.trust_domain().clone();
        let mut last = None;
        for _ in 0..PUBLISH_ATTEMPTS {
            let journal = Journal::new(store.list_key_slots().await?);
            let stored = store.get_bundle(&td).await?;
            let mut bundle = derive(&journal, &authority, now);
            let previous = stored.as_ref().and_then(|b| {
                TrustBundle::from_spiffe_json(b.trust_domain.clone(), &b.spiffe_json).ok()
            });
            let mut published = previous
                .as_ref()
                .map(|b| PublishedKeys::recover(b, &bundle, now))
                .unwrap_or_default();
            if let Some(key) = add.clone() {
                published.insert(key, &bundle, now)?;
            }
            published.prune(now);
            published.add_to(&mut bundle);
            let sequence = stored.as_ref().map_or(0, |b| b.sequence);
            bundle.sequence = u64::try_from(sequence).unwrap_or(0);
            let json = bundle.to_spiffe_json().into_bytes();
            if stored.as_ref().is_some_and(|old| old.spiffe_json == json) {
                return Ok(bundle);
            }
            bundle.sequence += 1;
            let next = StoredBundle {
                trust_domain: td.clone(),
                spiffe_json: bundle.to_spiffe_json().into_bytes(),
                sequence: i64::try_from(bundle.sequence).unwrap_or(i64::MAX),
                updated_at: now,
            };
            match store.put_bundle(&next, Some(sequence)).await {
                Ok(()) => return Ok(bundle),
                Err(e @ StoreError::Conflict { .. }) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .unwrap_or_else(|| StoreError::Invalid("the trust bundle kept changing".into()))
            .into())
    }
}

impl std::fmt::Debug for CurrentAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentAuthority")
            .field("authority", &self.load())
            .field("roots", &self.bundle().x509_authorities.len())
            .finish()
    }
}

/// The bundle of `journal` at `now` (every replica's published keys), with
/// `authority`'s own keys (and any upstream CA's JWT keys it carries)
/// included even before the journal lists them.
fn derive(journal: &Journal, authority: &Authority, now: SystemTime) -> TrustBundle {
    let own = authority.bundle();
    let mut bundle = TrustBundle::new(own.trust_domain.clone());
    bundle.refresh_hint = own.refresh_hint;
    bundle.x509_authorities = journal.x509_roots(now);
    for root in &own.x509_authorities {
        if !bundle.x509_authorities.contains(root) {
            bundle.x509_authorities.push(root.clone());
        }
    }
    bundle.jwt_authorities = journal.jwt_keys(now);
    for key in &own.jwt_authorities {
        if bundle.jwt_authority(&key.key_id).is_none() {
            bundle.jwt_authorities.push(key.clone());
        }
    }
    bundle
}
