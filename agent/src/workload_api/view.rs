//! What one caller sees of a snapshot: its matched SVIDs and the bundles.
//!
//! Every message a stream sends (Workload API or SDS) is a function of its
//! caller's view, so a stream compares the view of each new snapshot with
//! the view of its last message and rebuilds only when they differ. SVIDs
//! compare by identity (the manager publishes the same `Arc` until an SVID
//! is re-issued), bundles by identity and then by value.

use std::sync::Arc;
use std::time::SystemTime;

use meshid_identity::{BundleSet, Selector, TrustDomain};
use tonic::Status;

use super::messages;
use crate::cache::{CachedSvid, Snapshot};

/// One caller's view of one snapshot.
#[derive(Debug, Clone)]
pub(crate) struct View {
    svids: Vec<Arc<CachedSvid>>,
    bundles: Arc<BundleSet>,
    trust_domain: Option<TrustDomain>,
}

// === impl View ===

impl View {
    /// The view of `snap` for a caller with `selectors` at `now`;
    /// `PermissionDenied` if it is entitled to no (unexpired) SVID.
    pub(crate) fn of(
        snap: &Snapshot,
        selectors: &[Selector],
        now: SystemTime,
    ) -> Result<Self, Status> {
        Ok(Self {
            svids: messages::entitled(snap, selectors, now)?,
            bundles: Arc::clone(&snap.bundles),
            trust_domain: snap.trust_domain.clone(),
        })
    }

    /// The caller's SVIDs, in the order messages list them.
    pub(crate) fn svids(&self) -> &[Arc<CachedSvid>] {
        &self.svids
    }

    /// When this view changes by expiry alone.
    pub(crate) fn next_expiry(&self) -> Option<SystemTime> {
        messages::earliest_expiry(&self.svids)
    }

    /// True if a message built from `self` would equal one built from
    /// `other`: the same SVID objects in the same order, equal bundles and
    /// the same own trust domain.
    pub(crate) fn same_as(&self, other: &View) -> bool {
        self.svids.len() == other.svids.len()
            && self
                .svids
                .iter()
                .zip(&other.svids)
                .all(|(a, b)| Arc::ptr_eq(a, b))
            && (Arc::ptr_eq(&self.bundles, &other.bundles) || self.bundles == other.bundles)
            && self.trust_domain == other.trust_domain
    }
}
