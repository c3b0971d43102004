//! Batch signing: authorize each item against the caller's entries, sign
//! off the async runtime, record all issuances in one store call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use meshid_identity::{SpiffeId, verify_csr};
use meshid_proto::ca::{
    ItemError, JwtSvid, JwtSvidRequest, JwtSvidResult, SvidRequest, SvidResult, jwt_svid_result,
    svid_result,
};
use tonic::{Code, Status};

use super::{agent_parents, convert, secs};
use crate::authority::{Authority, X509SvidSpec};
use crate::metrics::CaMetrics;
use crate::store::{Agent, IssuanceRecord, MAX_GET_ENTRIES, RegistrationEntry, Store};

/// Most audiences on one JWT-SVID, and the longest one.
const MAX_AUDIENCES: usize = 32;
const MAX_AUDIENCE_LEN: usize = 512;

// A full batch must fit one entry lookup.
const _: () = assert!(super::MAX_BATCH <= MAX_GET_ENTRIES);

pub(super) fn parents(agent: &Agent) -> Vec<SpiffeId> {
    agent_parents(agent)
}

fn item_error(code: Code, message: impl Into<String>) -> ItemError {
    ItemError {
        code: code as i32,
        message: message.into(),
    }
}

/// Loads the entries the batch names (each once, in one store query) and
/// keeps those the agent may serve. An entry whose SPIFFE ID is reserved
/// for the CA or agents (stored before the admin API refused them) is never
/// served: its SVID would let a workload act as the CA or an agent.
async fn authorized_entries<'a>(
    store: &Arc<dyn Store>,
    agent: &Agent,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, RegistrationEntry>, Status> {
    // IDs no entry can have are left out; the rest of the batch still runs.
    let mut wanted: Vec<String> = ids
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .map(str::to_owned)
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let parents = parents(agent);
    Ok(store
        .get_entries(&wanted)
        .await
        .map_err(convert::store_status)?
        .into_iter()
        .filter(|e| parents.contains(&e.parent_id))
        .filter(|e| {
            let reserved = e.spiffe_id.is_reserved();
            if reserved {
                tracing::warn!(
                    entry_id = %e.id,
                    spiffe_id = %e.spiffe_id,
                    "refusing to sign for an entry with a reserved SPIFFE ID; delete the entry"
                );
            }
            !reserved
        })
        .map(|e| (e.id.clone(), e))
        .collect())
}

fn denied(entry_id: &str) -> ItemError {
    item_error(
        Code::PermissionDenied,
        format!(
            "entry {:?} does not exist or is not served by this agent",
            entry_id.chars().take(64).collect::<String>()
        ),
    )
}

pub(super) async fn x509_batch(
    authority: &Arc<Authority>,
    store: &Arc<dyn Store>,
    metrics: &CaMetrics,
    agent: &Agent,
    requests: Vec<SvidRequest>,
    now: SystemTime,
) -> Result<Vec<SvidResult>, Status> {
    let entries =
        authorized_entries(store, agent, requests.iter().map(|r| r.entry_id.as_str())).await?;
    let authority = Arc::clone(authority);
    let agent_id = agent.spiffe_id.clone();
    let m = metrics.clone();
    let (results, records) = tokio::task::spawn_blocking(move || {
        let mut results = Vec::with_capacity(requests.len());
        let mut records = Vec::with_capacity(requests.len());
        for r in &requests {
            let Some(entry) = entries.get(&r.entry_id) else {
                m.signature("x509", "denied");
                results.push(svid_result::Result::Error(denied(&r.entry_id)));
                continue;
            };
            let start = Instant::now();
            let csr = match verify_csr(&r.csr) {
                Ok(c) => c,
                Err(e) => {
                    m.signature("x509", "invalid");
                    results.push(svid_result::Result::Error(item_error(
                        Code::InvalidArgument,
                        e.to_string(),
                    )));
                    continue;
                }
            };
            let spec = X509SvidSpec {
                spiffe_id: &entry.spiffe_id,
                dns_names: &entry.dns_names,
                public_key_der: &csr.public_key_der,
                requested_ttl: secs(r.ttl_seconds),
                entry_ttl: entry.x509_ttl,
            };
            match authority.sign_x509_svid(&spec, now) {
                Ok(issued) => {
                    m.signature("x509", "ok");
                    m.signing_latency(start.elapsed());
                    records.push(IssuanceRecord {
                        serial: issued.serial.clone(),
                        spiffe_id: entry.spiffe_id.clone(),
                        agent_id: Some(agent_id.clone()),
                        entry_id: Some(entry.id.clone()),
                        not_after: issued.not_after,
                        issued_at: now,
                        ca_key_id: Some(issued.ca_key_id.clone()),
                        tenant: entry.tenant.clone(),
                    });
                    results.push(svid_result::Result::Svid(convert::x509_svid(
                        &entry.spiffe_id,
                        &issued,
                        &entry.id,
                    )));
                }
                Err(e) => {
                    m.signature("x509", "error");
                    results.push(svid_result::Result::Error(item_error(
                        convert::signing_code(&e, &m),
                        e.to_string(),
                    )));
                }
            }
        }
        (results, records)
    })
    .await
    .map_err(|e| Status::internal(format!("signing task failed: {e}")))?;
    if !records.is_empty() {
        store
            .record_issuances(&records)
            .await
            .map_err(convert::store_status)?;
    }
    Ok(results
        .into_iter()
        .map(|r| SvidResult { result: Some(r) })
        .collect())
}

pub(super) async fn jwt_batch(
    authority: &Arc<Authority>,
    store: &Arc<dyn Store>,
    metrics: &CaMetrics,
    agent: &Agent,
    requests: Vec<JwtSvidRequest>,
    now: SystemTime,
) -> Result<Vec<JwtSvidResult>, Status> {
    let entries =
        authorized_entries(store, agent, requests.iter().map(|r| r.entry_id.as_str())).await?;
    let mut results = Vec::with_capacity(requests.len());
    for r in &requests {
        let result = match entries.get(&r.entry_id) {
            None => {
                metrics.signature("jwt", "denied");
                jwt_svid_result::Result::Error(denied(&r.entry_id))
            }
            Some(_)
                if r.audience.is_empty()
                    || r.audience.len() > MAX_AUDIENCES
                    || r.audience
                        .iter()
                        .any(|a| a.is_empty() || a.len() > MAX_AUDIENCE_LEN) =>
            {
                metrics.signature("jwt", "invalid");
                jwt_svid_result::Result::Error(item_error(
                    Code::InvalidArgument,
                    format!(
                        "give 1 to {MAX_AUDIENCES} non-empty audiences of at most {MAX_AUDIENCE_LEN} bytes"
                    ),
                ))
            }
            Some(entry) => match authority.mint_jwt_svid(
                &entry.spiffe_id,
                &r.audience,
                secs(r.ttl_seconds),
                entry.jwt_ttl,
                now,
            ) {
                Ok((token, exp)) => {
                    metrics.signature("jwt", "ok");
                    jwt_svid_result::Result::Svid(JwtSvid {
                        spiffe_id: entry.spiffe_id.to_string(),
                        token,
                        expires_at: convert::unix(exp),
                    })
                }
                Err(e) => {
                    metrics.signature("jwt", "error");
                    jwt_svid_result::Result::Error(item_error(Code::Internal, e.to_string()))
                }
            },
        };
        results.push(JwtSvidResult {
            result: Some(result),
        });
    }
    Ok(results)
}
