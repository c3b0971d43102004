//! The SVID manager: keeps one fresh X.509-SVID per registration entry.
//!
//! Each pass ([`SvidManager::tick`]) syncs the full entry list from the CA
//! (so removed entries disappear), issues SVIDs for new or changed entries
//! and for those past their rotation point (50% ± 10% of life by default),
//! drops expired ones and publishes a new [`Snapshot`] when anything changed.
//! SVIDs whose signing key the CA rotated out or tainted are re-issued
//! early ([`crate::reissue`]); the own trust domain's bundle and the CA's
//! key state go to the attestor ([`SvidManager::on_trust`]), which keeps
//! the agent's own SVID and the stored bundle in step.
//! [`SvidManager::run`] repeats passes every `sync_interval`, or after an
//! exponential backoff while the CA is unreachable — cached SVIDs keep being
//! served until they expire.

mod issue;
mod jwt;
mod sync;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_identity::{BundleSet, TrustBundle, TrustDomain};
use rand::Rng;
use tokio::sync::{Notify, watch};

use crate::backoff::Backoff;
use crate::cache::{CachedSvid, EntryInfo, Snapshot};
use crate::metrics::AgentMetrics;
use crate::node_client::{CaClient, CaError};
use crate::reissue::{CaKeys, KeyWatch, Reason};
use crate::workload_api::MintError;
use meshid_runtime::clock::SharedClock;

pub use jwt::{JwtCache, JwtError, JwtSvid, MAX_AUDIENCE_LEN, MAX_AUDIENCES};
pub use sync::MAX_ENTRIES;

/// Settings of the SVID manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// The agent's trust domain.
    pub trust_domain: TrustDomain,
    /// Time between syncs while the CA is healthy.
    pub sync_interval: Duration,
    /// Rotate at this fraction of an SVID's lifetime …
    pub rotation_fraction: f64,
    /// … plus or minus a uniform random part of this fraction.
    pub rotation_jitter: f64,
    /// CSRs per `SignX509Svids` call (at most 500).
    pub batch_size: usize,
    /// First retry delay while the CA fails.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
}

/// A cached SVID plus when to rotate it.
#[derive(Debug, Clone)]
struct Slot {
    svid: Arc<CachedSvid>,
    rotate_at: SystemTime,
    keys: KeyWatch,
}

/// What a sync told about the own trust domain, for the attestor: the
/// bundle (to store and to verify its renewed SVID) and the CA's key state
/// (to re-issue its own SVID on rotation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedTrust {
    /// The own trust domain's bundle as the CA serves it.
    pub bundle: TrustBundle,
    /// The CA's key state, if it sent one.
    pub ca_keys: Option<Arc<CaKeys>>,
}

/// Keeps SVIDs for every entry and publishes [`Snapshot`]s.
#[derive(Debug)]
pub struct SvidManager {
    config: ManagerConfig,
    client: Arc<dyn CaClient>,
    clock: SharedClock,
    metrics: AgentMetrics,
    entries: BTreeMap<String, EntryInfo>,
    slots: BTreeMap<String, Slot>,
    bundles: Arc<BundleSet>,
    tx: watch::Sender<Arc<Snapshot>>,
    backoff: Backoff,
    agent_refused: Option<Arc<Notify>>,
    trust: Option<watch::Sender<Option<Arc<SyncedTrust>>>>,
    ca_keys: Option<Arc<CaKeys>>,
    jwt: JwtCache,
    synced_once: bool,
}

/// What servers hold: the snapshot channel and JWT minting.
#[derive(Debug, Clone)]
pub struct ManagerHandle {
    rx: watch::Receiver<Arc<Snapshot>>,
    jwt: JwtCache,
}

// === impl ManagerConfig ===

impl ManagerConfig {
    /// Defaults for `trust_domain`: 5 s sync, 50% ± 10%, batches of 500,
    /// backoff 1 s doubling to 10 s (`CA_RETRY_MAX`).
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            sync_interval: Duration::from_secs(5),
            rotation_fraction: 0.5,
            rotation_jitter: 0.1,
            batch_size: crate::config::MAX_BATCH_SIZE,
            backoff_base: crate::backoff::CA_RETRY_BASE,
            backoff_max: crate::backoff::CA_RETRY_MAX,
        }
    }
}

// === impl ManagerHandle ===

impl ManagerHandle {
    /// A new receiver of snapshots (starts at the current one).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.rx.clone()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.rx.borrow().clone()
    }

    /// A JWT-SVID for `entry` (which the caller matched against the
    /// workload's selectors) with `audience`.
    pub async fn mint_jwt_svid(
        &self,
        entry: &EntryInfo,
        audience: &[String],
    ) -> Result<JwtSvid, JwtError> {
        self.jwt.mint(entry, audience).await
    }
}

#[async_trait::async_trait]
impl crate::workload_api::JwtMinter for ManagerHandle {
    async fn mint(&self, entry_id: &str, audience: &[String]) -> Result<String, MintError> {
        let entry = self
            .snapshot()
            .svids
            .iter()
            .find(|s| s.entry.id == entry_id)
            .map(|s| s.entry.clone())
            .ok_or_else(|| {
                MintError::Refused(format!("entry {entry_id} is not served by this agent"))
            })?;
        match self.jwt.mint(&entry, audience).await {
            Ok(svid) => Ok(svid.token),
            Err(JwtError::Ca(e)) if e.is_transient() => Err(MintError::Unavailable(e.to_string())),
            Err(e) => Err(MintError::Refused(e.to_string())),
        }
    }
}

// === impl Slot ===

impl Slot {
    /// The normal rotation point, or the re-issue point the CA's keys call
    /// for if that is earlier.
    fn due_at(&self) -> SystemTime {
        match self.keys.plan() {
            Some(p) => p.at.min(self.rotate_at),
            None => self.rotate_at,
        }
    }
}

// === impl SvidManager ===

impl SvidManager {
    /// A manager with an empty snapshot, plus the handle servers use.
    pub fn new(
        config: ManagerConfig,
        client: Arc<dyn CaClient>,
        clock: SharedClock,
        metrics: AgentMetrics,
    ) -> (Self, ManagerHandle) {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let jwt = JwtCache::new(client.clone(), clock.clone());
        let backoff = Backoff::new(config.backoff_base, config.backoff_max);
        let m = Self {
            config,
            client,
            clock,
            metrics,
            entries: BTreeMap::new(),
            slots: BTreeMap::new(),
            bundles: Arc::new(BundleSet::new()),
            tx,
            backoff,
            agent_refused: None,
            trust: None,
            ca_keys: None,
            jwt: jwt.clone(),
            synced_once: false,
        };
        (m, ManagerHandle { rx, jwt })
    }

    /// Notified when the CA says it does not know the agent, so the
    /// attestor can renew or re-attest at once.
    pub fn on_agent_refused(&mut self, notify: Arc<Notify>) {
        self.agent_refused = Some(notify);
    }

    /// Publishes the own trust domain's bundle and the CA's key state on
    /// `tx` after every sync that changed them (the attestor listens).
    pub fn on_trust(&mut self, tx: watch::Sender<Option<Arc<SyncedTrust>>>) {
        self.trust = Some(tx);
    }

    /// True after the first complete sync.
    pub fn is_synced(&self) -> bool {
        self.synced_once
    }

    /// One pass: sync, issue what is missing or due, prune, publish.
    ///
    /// On error the cache is kept (minus expired SVIDs) and published.
    pub async fn tick(&mut self) -> Result<(), CaError> {
        let result = self.sync_and_issue().await;
        self.metrics
            .ca_reachable
            .set(i64::from(!matches!(&result, Err(e) if e.is_transient())));
        if let Err(CaError::AgentUnknown(_) | CaError::NoCredentials) = &result
            && let Some(n) = &self.agent_refused
        {
            n.notify_one();
        }
        self.publish();
        result
    }

    async fn sync_and_issue(&mut self) -> Result<(), CaError> {
        let synced = match sync::sync_all(self.client.as_ref(), &self.config.trust_domain).await {
            Ok(s) => s,
            Err(e) => {
                self.metrics.sync_failures.inc();
                return Err(e);
            }
        };
        self.synced_once = true;
        self.metrics.last_sync.set(unix_f64(self.clock.now()));
        if *synced.bundles != *self.bundles {
            let jwt_keys = |b: &BundleSet| {
                b.get(&self.config.trust_domain)
                    .map(|own| own.jwt_authorities.clone())
            };
            if jwt_keys(&synced.bundles) != jwt_keys(&self.bundles) {
                self.jwt.clear();
            }
            self.client.set_bundles(Arc::new(own_only(
                &synced.bundles,
                &self.config.trust_domain,
            )));
            self.bundles = synced.bundles;
        }
        let keys = synced.ca_keys.map(Arc::new);
        if keys != self.ca_keys {
            self.ca_keys = keys;
            self.jwt.clear();
        }
        self.announce_trust();
        self.entries = synced
            .entries
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect();
        self.reconcile_slots();
        let now = self.clock.now();
        for slot in self.slots.values_mut() {
            slot.keys.update(self.ca_keys.as_ref(), now);
        }
        // Entries re-issued only because of the CA's keys, for the metric.
        let mut early: HashMap<String, Reason> = HashMap::new();
        let due: Vec<EntryInfo> = self
            .entries
            .values()
            .filter(|e| match self.slots.get(&e.id) {
                None => true,
                Some(s) if s.svid.entry != **e || now >= s.rotate_at => true,
                Some(s) => match s.keys.plan() {
                    Some(p) if now >= p.at => {
                        early.insert(e.id.clone(), p.reason);
                        true
                    }
                    _ => false,
                },
            })
            .cloned()
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let clock = self.clock.clone();
        let (issued, err) = issue::issue(
            self.client.as_ref(),
            &due,
            &self.bundles,
            self.config.batch_size,
            move || clock.now(),
        )
        .await;
        for (entry, reason) in &issued.failed {
            self.metrics.rotation_failures.inc();
            tracing::warn!(%entry, %reason, "SVID issuance failed; will retry at the next sync");
        }
        for svid in issued.svids {
            self.metrics.svids_issued.inc();
            tracing::debug!(entry = %svid.entry.id, spiffe_id = %svid.entry.spiffe_id, serial = %svid.serial, "SVID issued");
            if let Some(reason) = early.get(&svid.entry.id) {
                self.metrics.reissued(*reason);
                tracing::info!(entry = %svid.entry.id, spiffe_id = %svid.entry.spiffe_id, reason = reason.as_str(), "SVID re-issued under the CA's current key");
            }
            let rotate_at = self.rotate_at(&svid);
            let leaf = svid.chain.first().map(|c| c.as_ref()).unwrap_or_default();
            let keys = KeyWatch::new(leaf, self.ca_keys.clone());
            self.slots.insert(
                svid.entry.id.clone(),
                Slot {
                    svid: Arc::new(svid),
                    rotate_at,
                    keys,
                },
            );
        }
        match err {
            Some(e) => {
                self.metrics.rotation_failures.inc();
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Sends the own bundle and the CA's key state to the attestor if they
    /// changed since the last send.
    fn announce_trust(&self) {
        let Some(tx) = &self.trust else { return };
        let Some(bundle) = self.bundles.get(&self.config.trust_domain) else {
            return;
        };
        tx.send_if_modified(|cur| {
            let same = cur
                .as_ref()
                .is_some_and(|c| c.bundle == *bundle && c.ca_keys == self.ca_keys);
            if !same {
                *cur = Some(Arc::new(SyncedTrust {
                    bundle: bundle.clone(),
                    ca_keys: self.ca_keys.clone(),
                }));
            }
            !same
        });
    }

    /// Drops SVIDs of removed entries; carries changed metadata over to
    /// SVIDs whose identity is unchanged (they are re-issued this pass).
    fn reconcile_slots(&mut self) {
        let entries = &self.entries;
        self.slots.retain(|id, slot| match entries.get(id) {
            None => false,
            Some(e) => {
                e.spiffe_id == slot.svid.entry.spiffe_id && e.dns_names == slot.svid.entry.dns_names
            }
        });
        for (id, slot) in &mut self.slots {
            if let Some(e) = entries.get(id)
                && *e != slot.svid.entry
            {
                let s = &slot.svid;
                slot.svid = Arc::new(CachedSvid {
                    entry: e.clone(),
                    chain: s.chain.clone(),
                    key: s.key.clone(),
                    not_before: s.not_before,
                    not_after: s.not_after,
                    serial: s.serial.clone(),
                });
                // Re-issue so the SVID reflects the new revision.
                slot.rotate_at = SystemTime::UNIX_EPOCH;
            }
        }
    }

    /// `not_before + life × (fraction ± jitter)`.
    fn rotate_at(&self, svid: &CachedSvid) -> SystemTime {
        let life = svid
            .not_after
            .duration_since(svid.not_before)
            .unwrap_or_default();
        let j = self.config.rotation_jitter.abs();
        let spread = if j > 0.0 {
            rand::rng().random_range(-j..=j)
        } else {
            0.0
        };
        let f = (self.config.rotation_fraction + spread).clamp(0.01, 0.99);
        svid.not_before + life.mul_f64(f)
    }

    /// Publishes the unexpired SVIDs if they or the bundles changed.
    fn publish(&mut self) {
        let now = self.clock.now();
        let before = self.slots.len();
        self.slots.retain(|_, s| s.svid.not_after > now);
        if self.slots.len() < before {
            tracing::warn!(
                dropped = before - self.slots.len(),
                "dropped expired SVIDs the CA could not renew"
            );
        }
        let svids: Vec<Arc<CachedSvid>> = self.slots.values().map(|s| s.svid.clone()).collect();
        self.metrics
            .svids_cached
            .set(i64::try_from(svids.len()).unwrap_or(i64::MAX));
        let next = self.slots.values().map(Slot::due_at).min();
        self.metrics
            .next_rotation
            .set(next.map_or(0, |t| unix_f64(t) as i64));
        let bundles = self.bundles.clone();
        let td = self.config.trust_domain.clone();
        self.tx.send_if_modified(|cur| {
            let same_bundles = Arc::ptr_eq(&cur.bundles, &bundles) || *cur.bundles == *bundles;
            let same = same_bundles
                && cur.trust_domain.as_ref() == Some(&td)
                && cur.svids.len() == svids.len()
                && cur.svids.iter().zip(&svids).all(|(a, b)| Arc::ptr_eq(a, b));
            if same {
                return false;
            }
            // Equal bundles keep their `Arc`, so streams see them unchanged
            // by identity alone.
            let bundles = if same_bundles {
                Arc::clone(&cur.bundles)
            } else {
                bundles
            };
            *cur = Arc::new(Snapshot::new(bundles, Some(td), svids, cur.generation + 1));
            true
        });
    }

    /// Time until the next pass: the sync interval, or sooner when an SVID
    /// becomes due for rotation (if `rotations`) or expires. Points already
    /// passed are left to the regular interval, so a failing entry is not
    /// retried in a tight loop.
    fn next_wake(&self, base: Duration, rotations: bool) -> Duration {
        let now = self.clock.now();
        let mut wake = base;
        for s in self.slots.values() {
            let rotate = rotations.then_some(s.due_at());
            for t in rotate.into_iter().chain([s.svid.not_after]) {
                if let Ok(d) = t.duration_since(now)
                    && !d.is_zero()
                {
                    wake = wake.min(d);
                }
            }
        }
        wake
    }

    /// Runs passes until `shutdown` changes (or its sender is dropped).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let delay = match self.tick().await {
                Ok(()) => {
                    if self.backoff.attempts() > 0 {
                        tracing::info!(
                            failed_attempts = self.backoff.attempts(),
                            "sync with the CA works again"
                        );
                    }
                    // The next failure starts again from the base delay.
                    self.backoff.reset();
                    self.next_wake(self.config.sync_interval, true)
                }
                Err(e) => {
                    let d = self.backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?d, attempt = self.backoff.attempts(), "sync with the CA failed; serving cached SVIDs");
                    self.next_wake(d, false)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

fn own_only(bundles: &BundleSet, td: &TrustDomain) -> BundleSet {
    bundles.get(td).cloned().into_iter().collect()
}

fn unix_f64(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
