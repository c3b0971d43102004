//! Workload API messages built from a snapshot for one caller.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use meshid_identity::{Selector, TrustBundle, TrustDomain};
use meshid_proto::workload::{JwtBundlesResponse, X509BundlesResponse, X509svid, X509svidResponse};
use rustls_pki_types::CertificateDer;
use tonic::Status;

use crate::cache::{CachedSvid, Snapshot};

/// The caller matches no entry (or only expired SVIDs).
pub(crate) fn no_identity() -> Status {
    Status::permission_denied("no identity registered for this workload")
}

/// The caller's unexpired SVIDs; `PermissionDenied` if there are none.
pub(crate) fn entitled(
    snap: &Snapshot,
    selectors: &[Selector],
    now: SystemTime,
) -> Result<Vec<Arc<CachedSvid>>, Status> {
    let svids = snap.svids_for(selectors, now);
    if svids.is_empty() {
        return Err(no_identity());
    }
    Ok(svids)
}

/// The earliest expiry among `svids`: when the caller's view changes next
/// even without a new snapshot.
pub(crate) fn earliest_expiry(svids: &[Arc<CachedSvid>]) -> Option<SystemTime> {
    svids.iter().map(|s| s.not_after).min()
}

/// The node's trust domain: the snapshot's, else the first SVID's.
pub(crate) fn own_trust_domain(snap: &Snapshot, svids: &[Arc<CachedSvid>]) -> Option<TrustDomain> {
    snap.trust_domain
        .clone()
        .or_else(|| svids.first().map(|s| s.entry.spiffe_id.trust_domain()))
}

/// The trust domains whose bundles the caller gets: its SVIDs' own trust
/// domains, the node's, and every domain its entries federate with (only
/// those the snapshot has a bundle for).
pub(crate) fn visible_bundles<'a>(
    snap: &'a Snapshot,
    svids: &[Arc<CachedSvid>],
) -> Vec<&'a TrustBundle> {
    let mut domains: BTreeSet<TrustDomain> = BTreeSet::new();
    domains.extend(own_trust_domain(snap, svids));
    for s in svids {
        domains.insert(s.entry.spiffe_id.trust_domain());
        domains.extend(s.entry.federates_with.iter().cloned());
    }
    domains
        .iter()
        .filter_map(|td| snap.bundles.get(td))
        .collect()
}

/// Certificates as one byte string of concatenated DER.
pub(crate) fn concat_der(certs: &[CertificateDer<'_>]) -> Vec<u8> {
    certs
        .iter()
        .flat_map(|c| c.as_ref().iter().copied())
        .collect()
}

/// The map key for a trust domain: its ID, `spiffe://<name>`.
fn key(td: &TrustDomain) -> String {
    td.id().as_str().to_owned()
}

/// `FetchX509SVID`: the caller's SVIDs (`svids`, from [`entitled`]), each
/// with its own trust domain's roots, and the federated bundles its entries
/// ask for.
pub(crate) fn x509_svid_response(
    snap: &Snapshot,
    svids: &[Arc<CachedSvid>],
) -> Result<X509svidResponse, Status> {
    let mut out = X509svidResponse::default();
    let mut own: BTreeSet<TrustDomain> = BTreeSet::new();
    for s in svids {
        let td = s.entry.spiffe_id.trust_domain();
        let bundle = snap
            .bundles
            .get(&td)
            .map(|b| concat_der(&b.x509_authorities))
            .unwrap_or_default();
        if bundle.is_empty() {
            return Err(Status::unavailable(format!(
                "the agent has no trust bundle for {} yet; retry shortly",
                td.as_str()
            )));
        }
        own.insert(td);
        out.svids.push(X509svid {
            spiffe_id: s.entry.spiffe_id.as_str().to_owned(),
            x509_svid: concat_der(&s.chain),
            x509_svid_key: s.key.pkcs8_der().to_vec(),
            bundle,
            hint: s.entry.hint.clone(),
        });
    }
    out.federated_bundles = visible_bundles(snap, svids)
        .into_iter()
        .filter(|b| !own.contains(&b.trust_domain) && !b.x509_authorities.is_empty())
        .map(|b| (key(&b.trust_domain), concat_der(&b.x509_authorities)))
        .collect::<HashMap<_, _>>();
    Ok(out)
}

/// `FetchX509Bundles`: own and federated X.509 roots.
pub(crate) fn x509_bundles_response(
    snap: &Snapshot,
    svids: &[Arc<CachedSvid>],
) -> Result<X509BundlesResponse, Status> {
    let bundles = visible_bundles(snap, svids)
        .into_iter()
        .filter(|b| !b.x509_authorities.is_empty())
        .map(|b| (key(&b.trust_domain), concat_der(&b.x509_authorities)))
        .collect();
    Ok(X509BundlesResponse {
        crl: Vec::new(),
        bundles,
    })
}

/// `FetchJWTBundles`: own and federated JWT keys, one JWKS per domain.
pub(crate) fn jwt_bundles_response(
    snap: &Snapshot,
    svids: &[Arc<CachedSvid>],
) -> Result<JwtBundlesResponse, Status> {
    let bundles = visible_bundles(snap, svids)
        .into_iter()
        .map(|b| {
            let mut jwt_only = b.clone();
            jwt_only.x509_authorities.clear();
            (key(&b.trust_domain), jwt_only.to_spiffe_json().into_bytes())
        })
        .collect();
    Ok(JwtBundlesResponse { bundles })
}
