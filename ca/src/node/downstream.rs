//! `SignDownstreamCa`: a downstream meshid CA of the same trust domain,
//! attested like an agent, gets its intermediate signed.
//!
//! The caller must be an attested agent (the node API's usual caller
//! binding) holding a registration entry with `downstream = true` whose
//! parent is the agent (or one of its node aliases) and whose selectors are
//! all among the agent's node selectors. Everything else is refused with
//! `PERMISSION_DENIED` naming the entry to create.
//!
//! The request may carry the downstream's JWT key: it is checked before
//! anything is signed and, once the intermediate is signed, published in
//! this CA's bundle until that intermediate's notAfter
//! ([`crate::authority::CurrentAuthority::publish_jwt_authority`]), so the
//! downstream's JWT-SVIDs verify for this CA's workloads.

use std::time::{Duration, Instant, SystemTime};

use meshid_identity::{JwtAuthority, verify_ca_csr};
use meshid_proto::ca::{SignDownstreamCaRequest, SignDownstreamCaResponse};
use tonic::Status;

use super::{NodeService, agent_parents, convert};
use crate::authority::{AuthorityError, PublishKeyError};
use crate::store::{Agent, IssuanceRecord, MAX_PAGE_LIMIT, Page, RegistrationEntry, Store};

/// Lifetime of a downstream CA's intermediate unless the CA's
/// `[downstream] ca_ttl` says otherwise.
pub const DEFAULT_DOWNSTREAM_CA_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most pages of an agent's entries searched for its downstream entry.
const MAX_PAGES: usize = 100;
/// Longest subject CommonName accepted (X.520's upper bound).
const MAX_CN_LEN: usize = 64;

/// Signs the downstream CA CSR of `agent`'s request with the current
/// authority of `svc`, for `svc`'s downstream CA lifetime.
pub(super) async fn sign(
    svc: &NodeService,
    agent: &Agent,
    req: SignDownstreamCaRequest,
    now: SystemTime,
) -> Result<SignDownstreamCaResponse, Status> {
    let store = svc.inner.store.as_ref();
    let metrics = &svc.inner.metrics;
    let Some(entry) = downstream_entry(store, agent).await? else {
        metrics.signature("downstream", "denied");
        return Err(Status::permission_denied(format!(
            "agent {} may not run a downstream CA: create a registration entry for it with \
             `meshid entry create --downstream --parent-id {} --selector <one of the agent's \
             node selectors, e.g. {}> --spiffe-id <the downstream CA's ID>`",
            agent.spiffe_id,
            agent.spiffe_id,
            agent.selectors.first().map_or_else(
                || "join_token:id:<token id>".to_owned(),
                ToString::to_string
            ),
        )));
    };
    let start = Instant::now();
    let csr = verify_ca_csr(&req.csr).map_err(|e| {
        metrics.signature("downstream", "invalid");
        Status::invalid_argument(format!("downstream CA CSR: {e}"))
    })?;
    let jwt = req.jwt_authority.map(|k| JwtAuthority {
        key_id: k.key_id,
        public_key_der: k.public_key,
        expires_at: None,
    });
    if let Some(Err(e)) = jwt.as_ref().map(JwtAuthority::check) {
        metrics.signature("downstream", "invalid");
        return Err(Status::invalid_argument(format!(
            "the downstream CA's JWT key: {e}"
        )));
    }
    let cn = match csr.common_name.as_deref() {
        Some(cn) if cn.is_empty() || cn.len() > MAX_CN_LEN => {
            metrics.signature("downstream", "invalid");
            return Err(Status::invalid_argument(format!(
                "downstream CA CSR: its subject CN must be 1 to {MAX_CN_LEN} bytes"
            )));
        }
        other => other,
    };
    // Off the async workers: the CA key may be on a token.
    let authority = svc.inner.authority.load();
    let (key, cn, ttl) = (
        csr.public_key_der,
        cn.map(str::to_owned),
        svc.downstream_ca_ttl,
    );
    let signed = tokio::task::spawn_blocking(move || {
        authority.sign_downstream_ca(&key, cn.as_deref(), ttl, now)
    })
    .await
    .map_err(|e| Status::internal(format!("signing task failed: {e}")))?;
    let issued = signed.map_err(|e| {
        metrics.signature("downstream", "error");
        match e {
            AuthorityError::DownstreamForbidden(_) => Status::failed_precondition(e.to_string()),
            e => Status::new(convert::signing_code(&e, metrics), e.to_string()),
        }
    })?;
    if let Some(mut key) = jwt {
        key.expires_at = Some(issued.not_after);
        let key_id = key.key_id.clone();
        svc.inner
            .authority
            .publish_jwt_authority(key, now)
            .await
            .map_err(|e| match e {
                PublishKeyError::Store(e) => convert::store_status(e),
                PublishKeyError::TooMany => Status::resource_exhausted(e.to_string()),
                e => Status::invalid_argument(e.to_string()),
            })?;
        tracing::info!(agent = %agent.spiffe_id, key_id, "published a downstream CA's JWT key");
    }
    metrics.signature("downstream", "ok");
    metrics.signing_latency(start.elapsed());
    let serial = issued
        .chain
        .first()
        .and_then(|c| crate::authority::serial_hex(c))
        .ok_or_else(|| Status::internal("the signed downstream CA certificate is unreadable"))?;
    store
        .record_issuances(&[IssuanceRecord {
            serial: serial.clone(),
            spiffe_id: entry.spiffe_id.clone(),
            agent_id: Some(agent.spiffe_id.clone()),
            entry_id: Some(entry.id.clone()),
            not_after: issued.not_after,
            issued_at: now,
            ca_key_id: Some(issued.ca_key_id.clone()),
            tenant: entry.tenant.clone(),
        }])
        .await
        .map_err(convert::store_status)?;
    tracing::info!(
        agent = %agent.spiffe_id,
        entry_id = %entry.id,
        serial,
        "signed a downstream CA's intermediate"
    );
    Ok(SignDownstreamCaResponse {
        ca_cert_chain: issued.chain.iter().map(|c| c.to_vec()).collect(),
        bundle: Some(convert::bundle(&svc.inner.authority.bundle())),
    })
}

/// The first downstream entry `agent` may use: parent the agent or one of
/// its aliases, every selector among the agent's node selectors, an ID
/// outside meshid's reserved space.
async fn downstream_entry(
    store: &dyn Store,
    agent: &Agent,
) -> Result<Option<RegistrationEntry>, Status> {
    let parents = agent_parents(agent);
    let mut page = Page::first(MAX_PAGE_LIMIT);
    for _ in 0..MAX_PAGES {
        let paged = store
            .list_entries_by_parents(&parents, &page)
            .await
            .map_err(convert::store_status)?;
        let (entries, next) = paged;
        if let Some(e) = entries.into_iter().find(|e| may_serve(e, agent)) {
            return Ok(Some(e));
        }
        match next {
            Some(next) => page.after = Some(next),
            None => return Ok(None),
        }
    }
    Ok(None)
}

fn may_serve(entry: &RegistrationEntry, agent: &Agent) -> bool {
    entry.downstream
        && !entry.spiffe_id.is_reserved()
        && entry.selectors.iter().all(|s| agent.selectors.contains(s))
}
