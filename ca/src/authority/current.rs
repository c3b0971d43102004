//! The CA's current signing authority, swappable while the CA serves:
//! [`CurrentAuthority`].
//!
//! Every part of the CA that signs or serves the bundle (node API, its own
//! serving certificate, readiness, metrics) reads the authority through this
//! handle on each use, so a replaced intermediate is used at once. Readers
//! never lock: [`CurrentAuthority::load`] is an atomic pointer load
//! (`arc-swap`).
//!
//! The published bundle is kept here, not in the [`Authority`]: when a
//! replacement comes with a different root, the old roots stay in the
//! bundle until every SVID the old authority may have signed has expired
//! (swap time + the old authority's longest X.509 or agent TTL); then
//! [`CurrentAuthority::prune`] drops them. Until then the node API keeps
//! presenting a serving certificate of the old chain
//! ([`CurrentAuthority::serving`]): agents learn the new root from the
//! bundle of their next sync, and would refuse the CA if it switched first.
//!
//! JWT keys a downstream CA published ([`CurrentAuthority::publish_jwt_authority`],
//! kept in `published.rs`) are merged into the bundle here too, in the one
//! place every bundle is built ([`Extras::bundle`]).

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::{ArcSwap, ArcSwapOption};
use meshid_identity::{JwtAuthority, TrustBundle};
use rustls_pki_types::CertificateDer;

use super::published::{PublishKeyError, PublishedKeys};
use super::{Authority, AuthorityError, IssuanceError};
use crate::keymanager::KeyManager;
use crate::metrics::CaMetrics;
use crate::store::{CaKeyRecord, SlotState, Store, StoreError, StoredBundle};
use crate::upstream::UpstreamAuthority;

/// The store's key slot of the X.509 CA.
const X509_CA_SLOT: &str = "x509-ca";

/// The CA's current authority and the bundle it publishes, cheap to clone.
///
/// To rotate the CA (a renewed intermediate from files or from an upstream
/// CA): build and check the new [`Authority`] exactly as at start-up
/// ([`CurrentAuthority::candidate`]), then call [`CurrentAuthority::replace`].
/// New SVIDs are signed by the new authority from then on; SVIDs the old
/// one signed stay valid until they expire. Call
/// [`CurrentAuthority::prune`] now and then (the CA server does, every
/// [`PRUNE_INTERVAL`]) to drop old roots whose SVIDs have all expired.
#[derive(Clone)]
pub struct CurrentAuthority {
    inner: Arc<Inner>,
}

/// How often the CA server calls [`CurrentAuthority::prune`].
pub const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

struct Inner {
    authority: ArcSwap<Authority>,
    bundle: ArcSwap<TrustBundle>,
    /// The authority replaced by one of another root, while its roots are
    /// retained: it signs the node API's serving certificate.
    previous: ArcSwapOption<Authority>,
    store: Arc<dyn Store>,
    metrics: CaMetrics,
    /// Serialises writers (replace, prune, publish); readers never take it.
    writer: tokio::sync::Mutex<Extras>,
}

/// What the published bundle holds beyond the current authority's own.
#[derive(Debug, Default)]
struct Extras {
    /// Roots of replaced authorities.
    roots: Vec<RetainedRoot>,
    /// JWT keys other CAs published.
    jwt: PublishedKeys,
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

/// A root of a replaced authority, kept in the bundle until `until`.
#[derive(Debug, Clone)]
struct RetainedRoot {
    der: CertificateDer<'static>,
    until: SystemTime,
}

// === impl CurrentAuthority ===

impl CurrentAuthority {
    /// Publishes `authority`'s key and bundle to `store` (the bundle
    /// sequence moves only when its content changed) and makes it current.
    pub async fn start(
        authority: Authority,
        store: Arc<dyn Store>,
        metrics: CaMetrics,
        now: SystemTime,
    ) -> Result<Self, StoreError> {
        let stored = store.get_bundle(authority.trust_domain()).await?;
        let jwt = stored
            .and_then(|b| TrustBundle::from_spiffe_json(b.trust_domain, &b.spiffe_json).ok())
            .map(|b| PublishedKeys::recover(&b, authority.bundle(), now))
            .unwrap_or_default();
        let extras = Extras {
            roots: Vec::new(),
            jwt,
        };
        let bundle = extras.bundle(authority.bundle());
        let bundle = publish(store.as_ref(), &authority, bundle, now).await?;
        metrics.set_ca_expiry(authority.not_after());
        Ok(Self {
            inner: Arc::new(Inner {
                authority: ArcSwap::from_pointee(authority),
                bundle: ArcSwap::from_pointee(bundle),
                previous: ArcSwapOption::empty(),
                store,
                metrics,
                writer: tokio::sync::Mutex::new(extras),
            }),
        })
    }

    /// The authority to sign with now.
    pub fn load(&self) -> Arc<Authority> {
        self.inner.authority.load_full()
    }

    /// The authority that signs the node API's own serving certificate at
    /// `now`: the current one, or, after a replacement with a new root and
    /// until the old roots leave the bundle, the replaced one while its
    /// chain lasts (agents may not have the new root yet).
    pub fn serving(&self, now: SystemTime) -> Arc<Authority> {
        match self.inner.previous.load_full() {
            Some(previous) if previous.not_after() > now => previous,
            _ => self.load(),
        }
    }

    /// The trust bundle to serve now: the current roots, any roots of a
    /// replaced authority still retained, the JWT keys, and the sequence
    /// last published.
    pub fn bundle(&self) -> Arc<TrustBundle> {
        self.inner.bundle.load_full()
    }

    /// A replacement read from `upstream` exactly as at start-up, with the
    /// current issuance limits, and checked to sign SVIDs that verify
    /// against its own bundle (what agents do); give it to
    /// [`CurrentAuthority::replace`].
    pub fn candidate(
        &self,
        upstream: &dyn UpstreamAuthority,
        keys: &dyn KeyManager,
        now: SystemTime,
    ) -> Result<Authority, CandidateError> {
        let config = self.load().config().clone();
        let new = Authority::new(config, upstream, keys, now)?;
        new.check_issuance(now)?;
        Ok(new)
    }

    /// Makes `new` the authority: publishes its key and the bundle (its
    /// roots plus the retained ones) to the store, then swaps it in. Roots of
    /// the old authority that `new` lacks are retained until `now` plus the
    /// old authority's longest SVID lifetime. On a store error nothing is
    /// swapped; the caller may retry.
    pub async fn replace(&self, new: Authority, now: SystemTime) -> Result<(), StoreError> {
        let mut extras = self.inner.writer.lock().await;
        let old = self.load();
        let keep_until = now + longest_svid_ttl(&old);
        let mut candidates = extras.roots.clone();
        for der in &self.bundle().x509_authorities {
            if !new.bundle().x509_authorities.contains(der)
                && !candidates.iter().any(|r| &r.der == der)
            {
                candidates.push(RetainedRoot {
                    der: der.clone(),
                    until: keep_until,
                });
            }
        }
        candidates.retain(|r| r.until > now && !new.bundle().x509_authorities.contains(&r.der));
        let mut jwt = extras.jwt.clone();
        jwt.prune(now);
        let next = Extras {
            roots: candidates,
            jwt,
        };
        let bundle = next.bundle(new.bundle());
        let bundle = publish(self.inner.store.as_ref(), &new, bundle, now).await?;
        let root_changed = old
            .bundle()
            .x509_authorities
            .iter()
            .any(|r| !new.bundle().x509_authorities.contains(r));
        // Bundle first: for a moment readers may see the new roots with the
        // old authority, never SVIDs of a root the bundle lacks.
        self.inner.bundle.store(Arc::new(bundle));
        self.inner.metrics.set_ca_expiry(new.not_after());
        if next.roots.is_empty() {
            self.inner.previous.store(None);
        } else if root_changed {
            self.inner.previous.store(Some(old));
        }
        self.inner.authority.store(Arc::new(new));
        *extras = next;
        Ok(())
    }

    /// Drops retained roots whose SVIDs have all expired by `now`, and
    /// published JWT keys past their expiry, and republishes the bundle if
    /// that changed it. Returns whether it did.
    pub async fn prune(&self, now: SystemTime) -> Result<bool, StoreError> {
        let mut extras = self.inner.writer.lock().await;
        let before = extras.roots.len();
        let roots: Vec<RetainedRoot> = extras
            .roots
            .iter()
            .filter(|r| r.until > now)
            .cloned()
            .collect();
        let mut jwt = extras.jwt.clone();
        let keys_expired = jwt.prune(now);
        if roots.len() == before && !keys_expired {
            return Ok(false);
        }
        let next = Extras { roots, jwt };
        let authority = self.load();
        self.publish_with(&authority, &next, now).await?;
        if next.roots.is_empty() {
            self.inner.previous.store(None);
        }
        let dropped = before - next.roots.len();
        *extras = next;
        tracing::info!(
            dropped_roots = dropped,
            keys_expired,
            "bundle pruned: roots whose SVIDs have all expired, JWT keys of other CAs past \
             their expiry"
        );
        Ok(true)
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
        let mut extras = self.inner.writer.lock().await;
        let authority = self.load();
        let mut jwt = extras.jwt.clone();
        jwt.insert(key, authority.bundle(), now)?;
        let next = Extras {
            roots: extras.roots.clone(),
            jwt,
        };
        self.publish_with(&authority, &next, now).await?;
        *extras = next;
        Ok(())
    }

    /// Stores and serves `authority`'s bundle with `extras` (the current
    /// authority stays).
    async fn publish_with(
        &self,
        authority: &Authority,
        extras: &Extras,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let bundle = extras.bundle(authority.bundle());
        let bundle = publish(self.inner.store.as_ref(), authority, bundle, now).await?;
        self.inner.bundle.store(Arc::new(bundle));
        Ok(())
    }

    /// Calls [`CurrentAuthority::prune`] every `interval` until `stop`
    /// completes; store errors are logged and retried on the next tick.
    pub async fn prune_until(
        &self,
        interval: std::time::Duration,
        clock: meshid_runtime::clock::SharedClock,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(interval) => {}
            }
            if let Err(e) = self.prune(clock.now()).await {
                tracing::warn!(error = %e, "cannot drop expired roots from the bundle; retrying");
            }
        }
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

/// The longest lifetime of any SVID `a` signs (workload or agent).
fn longest_svid_ttl(a: &Authority) -> std::time::Duration {
    let c = a.config();
    c.max_x509_ttl.max(c.default_x509_ttl).max(c.agent_ttl)
}

// === impl Extras ===

impl Extras {
    /// `own` with the retained roots (after the current ones) and the
    /// published JWT keys (after its own) appended.
    fn bundle(&self, own: &TrustBundle) -> TrustBundle {
        let mut bundle = own.clone();
        for r in &self.roots {
            if !bundle.x509_authorities.contains(&r.der) {
                bundle.x509_authorities.push(r.der.clone());
            }
        }
        self.jwt.add_to(&mut bundle);
        bundle
    }
}

/// Records `authority`'s key slot and `bundle` in the store; the returned
/// bundle carries the sequence stored, bumped only when the content changed.
async fn publish(
    store: &dyn Store,
    authority: &Authority,
    mut bundle: TrustBundle,
    now: SystemTime,
) -> Result<TrustBundle, StoreError> {
    store
        .put_ca_key(&CaKeyRecord {
            slot: X509_CA_SLOT.into(),
            cert_chain_pem: meshid_identity::x509::to_pem(&authority.cert_chain()),
            key_ref: authority.key_ref().to_owned(),
            not_after: authority.not_after(),
            state: SlotState::Active,
        })
        .await?;
    let td = authority.trust_domain();
    let existing = store.get_bundle(td).await?;
    let previous = existing.as_ref().map_or(0, |b| b.sequence);
    bundle.sequence = u64::try_from(previous).unwrap_or(0);
    let json = bundle.to_spiffe_json().into_bytes();
    if existing.as_ref().is_some_and(|old| old.spiffe_json == json) {
        return Ok(bundle);
    }
    bundle.sequence += 1;
    let stored = StoredBundle {
        trust_domain: td.clone(),
        spiffe_json: bundle.to_spiffe_json().into_bytes(),
        sequence: i64::try_from(bundle.sequence).unwrap_or(i64::MAX),
        updated_at: now,
    };
    store.put_bundle(&stored, Some(previous)).await?;
    Ok(bundle)
}
