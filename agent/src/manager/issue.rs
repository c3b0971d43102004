//! Issues X.509-SVIDs for entries: a fresh local key each, CSRs sent in
//! batches, every answer verified before it is cached.

use std::time::SystemTime;

use meshid_identity::{BundleSet, PrivateKey};
use meshid_proto::ca::{SignX509SvidsRequest, SvidRequest, svid_result};

use crate::cache::{CachedSvid, EntryInfo};
use crate::node_client::{CaClient, CaError, check_x509_svid, csr_der};

/// What one round of issuance produced.
#[derive(Debug, Default)]
pub(super) struct Issued {
    /// New SVIDs.
    pub(super) svids: Vec<CachedSvid>,
    /// Entries the CA (or our checks) refused, with the reason.
    pub(super) failed: Vec<(String, String)>,
}

/// Issues one SVID per entry in batches of at most `batch_size`.
///
/// A transport failure stops the round: what was issued so far is returned
/// with the error so it is not lost.
pub(super) async fn issue(
    client: &dyn CaClient,
    entries: &[EntryInfo],
    bundles: &BundleSet,
    batch_size: usize,
    now: impl Fn() -> SystemTime,
) -> (Issued, Option<CaError>) {
    let mut out = Issued::default();
    for chunk in entries.chunks(batch_size.max(1)) {
        if let Err(e) = issue_batch(client, chunk, bundles, &now, &mut out).await {
            return (out, Some(e));
        }
    }
    (out, None)
}

async fn issue_batch(
    client: &dyn CaClient,
    chunk: &[EntryInfo],
    bundles: &BundleSet,
    now: &impl Fn() -> SystemTime,
    out: &mut Issued,
) -> Result<(), CaError> {
    let mut keys = Vec::with_capacity(chunk.len());
    let mut requests = Vec::with_capacity(chunk.len());
    for entry in chunk {
        let key = PrivateKey::generate_p256().map_err(|e| CaError::Tls(e.to_string()))?;
        requests.push(SvidRequest {
            entry_id: entry.id.clone(),
            csr: csr_der(&key)?,
            ttl_seconds: 0,
        });
        keys.push(key);
    }
    let resp = client
        .sign_x509_svids(SignX509SvidsRequest { requests })
        .await?;
    if resp.results.len() != chunk.len() {
        return Err(CaError::BadResponse(format!(
            "asked for {} SVIDs, got {} results",
            chunk.len(),
            resp.results.len()
        )));
    }
    let at = now();
    for ((entry, key), result) in chunk.iter().zip(keys).zip(resp.results) {
        match result.result {
            Some(svid_result::Result::Svid(svid)) => {
                match check_x509_svid(&svid, bundles, &key, Some(&entry.spiffe_id), at) {
                    Ok(issued) => out.svids.push(CachedSvid {
                        entry: entry.clone(),
                        chain: issued.chain,
                        key,
                        not_before: issued.not_before,
                        not_after: issued.not_after,
                        serial: issued.serial,
                    }),
                    Err(e) => out.failed.push((entry.id.clone(), e.to_string())),
                }
            }
            Some(svid_result::Result::Error(e)) => out
                .failed
                .push((entry.id.clone(), format!("code {}: {}", e.code, e.message))),
            None => out.failed.push((entry.id.clone(), "empty result".into())),
        }
    }
    Ok(())
}
