//! Reads the CA's full view for this agent, page by page.

use std::sync::Arc;

use meshid_identity::{BundleSet, Selector, SpiffeId, TrustDomain};
use meshid_proto::ca::{Entry, SyncRequest};
use meshid_proto::convert::{trust_bundle, trust_bundle_of};

use crate::cache::EntryInfo;
use crate::node_client::{CaClient, CaError};
use crate::reissue::CaKeys;

/// Most pages one sync reads before giving up.
const MAX_PAGES: usize = 10_000;
/// Most entries one agent serves.
pub const MAX_ENTRIES: usize = 200_000;
/// Longest page token accepted.
const MAX_PAGE_TOKEN_LEN: usize = 4096;

/// The full state from one sync.
#[derive(Debug)]
pub(super) struct Synced {
    pub(super) entries: Vec<EntryInfo>,
    pub(super) bundles: Arc<BundleSet>,
    /// The CA's key state (the last page's), if it sent one.
    pub(super) ca_keys: Option<CaKeys>,
}

/// Reads every page; fails unless the whole state arrived.
pub(super) async fn sync_all(client: &dyn CaClient, td: &TrustDomain) -> Result<Synced, CaError> {
    let mut entries = Vec::new();
    let mut bundles = BundleSet::new();
    let mut ca_keys = None;
    let mut token = String::new();
    for _ in 0..MAX_PAGES {
        let page = client
            .sync(SyncRequest {
                page_token: token.clone(),
                page_size: 0,
            })
            .await?;
        if let Some(b) = &page.bundle {
            let own = trust_bundle_of(td, b).map_err(|e| CaError::BadResponse(e.to_string()))?;
            bundles.insert(own);
        }
        if let Some(k) = CaKeys::from_wire(page.ca_keys.as_ref())? {
            ca_keys = Some(k);
        }
        for fb in &page.federated_bundles {
            match trust_bundle(fb) {
                Ok(b) if &b.trust_domain != td => bundles.insert(b),
                Ok(_) => {
                    tracing::warn!("CA sent the own trust domain as a federated bundle; ignored")
                }
                Err(e) => tracing::warn!(error = %e, "ignoring a federated bundle"),
            }
        }
        for e in &page.entries {
            match entry_info(e) {
                Ok(info) => entries.push(info),
                Err(reason) => tracing::warn!(entry = %e.id, %reason, "ignoring a malformed entry"),
            }
        }
        if entries.len() > MAX_ENTRIES {
            return Err(CaError::BadResponse(format!(
                "more than {MAX_ENTRIES} entries for one agent"
            )));
        }
        if page.next_page_token.is_empty() {
            if bundles.get(td).is_none() {
                return Err(CaError::BadResponse("sync carried no trust bundle".into()));
            }
            return Ok(Synced {
                entries,
                bundles: Arc::new(bundles),
                ca_keys,
            });
        }
        if page.next_page_token.len() > MAX_PAGE_TOKEN_LEN {
            return Err(CaError::BadResponse("page token too long".into()));
        }
        token = page.next_page_token;
    }
    Err(CaError::BadResponse(format!(
        "sync did not end after {MAX_PAGES} pages"
    )))
}

/// A wire entry as the agent uses it.
pub(super) fn entry_info(e: &Entry) -> Result<EntryInfo, String> {
    if e.id.is_empty() || e.id.len() > 256 {
        return Err("entry ID must be 1 to 256 bytes".into());
    }
    let spiffe_id = SpiffeId::parse(&e.spiffe_id).map_err(|err| err.to_string())?;
    let selectors = e
        .selectors
        .iter()
        .map(|s| Selector::new(&s.r#type, &s.value).map_err(|err| err.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let federates_with = e
        .federates_with
        .iter()
        .map(|t| TrustDomain::new(t).map_err(|err| err.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EntryInfo {
        id: e.id.clone(),
        spiffe_id,
        selectors,
        federates_with,
        hint: e.hint.clone(),
        revision: e.revision,
        dns_names: e.dns_names.clone(),
    })
}
