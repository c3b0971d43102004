//! The agent's view of its identities: what the SVID manager publishes and
//! the Workload API and SDS servers read.
//!
//! The manager owns the only writer; servers hold a
//! `tokio::sync::watch::Receiver<Arc<Snapshot>>` and re-read on change, so a
//! rotation reaches every open stream without locks on the read path.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use meshid_identity::{BundleSet, PrivateKey, Selector, SpiffeId, TrustDomain};
use rustls_pki_types::CertificateDer;

/// A registration entry as the agent needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// The CA's entry ID.
    pub id: String,
    /// The identity the entry grants.
    pub spiffe_id: SpiffeId,
    /// All of these must be among the caller's selectors.
    pub selectors: Vec<Selector>,
    /// Federated trust domains whose bundles the workload also gets.
    pub federates_with: Vec<TrustDomain>,
    /// Operator label (`hint` in the Workload API).
    pub hint: String,
    /// Entry revision (a change means: re-issue).
    pub revision: i64,
    /// DNS SANs the SVID carries.
    pub dns_names: Vec<String>,
}

/// One cached X.509-SVID with its private key.
#[derive(Debug)]
pub struct CachedSvid {
    /// The entry it was issued for.
    pub entry: EntryInfo,
    /// Leaf first, then intermediates up to (not including) the root.
    pub chain: Vec<CertificateDer<'static>>,
    /// The key generated on this node (never sent anywhere).
    pub key: PrivateKey,
    /// The leaf's notBefore.
    pub not_before: SystemTime,
    /// The leaf's notAfter: never served past this.
    pub not_after: SystemTime,
    /// The leaf's serial, hex.
    pub serial: String,
}

/// Everything the servers need, swapped whole on every change.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Own trust domain bundle plus federated bundles.
    pub bundles: Arc<BundleSet>,
    /// The node's own trust domain (empty set until the first sync).
    pub trust_domain: Option<TrustDomain>,
    /// Current SVIDs, one per entry that has been issued.
    pub svids: Vec<Arc<CachedSvid>>,
    /// Bumped on every published change.
    pub generation: u64,
    /// SVID positions by the first selector of their entry, built once per
    /// snapshot on first use: a caller must hold every selector of an entry,
    /// so its candidates are found under its own selectors without a scan.
    index: OnceLock<HashMap<Selector, Vec<usize>>>,
}

// === impl Snapshot ===

impl Snapshot {
    /// A snapshot of these bundles and SVIDs.
    pub fn new(
        bundles: Arc<BundleSet>,
        trust_domain: Option<TrustDomain>,
        svids: Vec<Arc<CachedSvid>>,
        generation: u64,
    ) -> Self {
        Self {
            bundles,
            trust_domain,
            svids,
            generation,
            index: OnceLock::new(),
        }
    }

    /// The SVIDs whose entry selectors are all among `selectors` and which
    /// have not expired at `now`, in a stable order (by SPIFFE ID, entry ID).
    pub fn svids_for(&self, selectors: &[Selector], now: SystemTime) -> Vec<Arc<CachedSvid>> {
        let index = self.index.get_or_init(|| {
            let mut map: HashMap<Selector, Vec<usize>> = HashMap::new();
            for (i, s) in self.svids.iter().enumerate() {
                if let Some(first) = s.entry.selectors.first() {
                    map.entry(first.clone()).or_default().push(i);
                }
            }
            map
        });
        let mut positions: Vec<usize> = selectors
            .iter()
            .filter_map(|sel| index.get(sel))
            .flatten()
            .copied()
            .collect();
        positions.sort_unstable();
        positions.dedup();
        let mut v: Vec<_> = positions
            .into_iter()
            .filter_map(|i| self.svids.get(i))
            .filter(|s| s.not_after > now)
            .filter(|s| meshid_identity::selector::all_match(&s.entry.selectors, selectors))
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            (a.entry.spiffe_id.as_str(), a.entry.id.as_str())
                .cmp(&(b.entry.spiffe_id.as_str(), b.entry.id.as_str()))
        });
        v
    }
}
