//! The audit log's admin calls (`ListAudit`, `VerifyAudit`), called after
//! the caller is authorized.

use std::time::{Duration, UNIX_EPOCH};

use meshid_identity::TrustDomain;
use meshid_proto::ca as pb;
use tonic::Status;

use super::DEFAULT_PAGE_SIZE;
use super::status;
use crate::audit;
use crate::store::{AuditFilter, MAX_AUDIT_SHORT, MAX_PAGE_LIMIT, Store};

/// `ListAudit` over the records of `tenants` (`None`: every record,
/// platform records included), narrowed by the request's filters.
pub(super) async fn list(
    store: &dyn Store,
    tenants: Option<&[String]>,
    req: pb::ListAuditRequest,
) -> Result<pb::ListAuditResponse, Status> {
    let filter = filter(tenants, &req)?;
    if req.after_seq < 0 {
        return Err(Status::invalid_argument(
            "after_seq must be 0 (from the start) or the next_after_seq of the previous page",
        ));
    }
    let limit = match req.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_LIMIT),
    };
    let records = store
        .list_audit(&filter, req.after_seq, limit)
        .await
        .map_err(|e| status::store(&e))?;
    let full = records.len() >= limit as usize;
    let next_after_seq = records.last().filter(|_| full).map_or(0, |r| r.seq);
    Ok(pb::ListAuditResponse {
        records: records.iter().map(audit::to_wire).collect(),
        next_after_seq,
    })
}

/// The store filter: the caller's tenants, and within them the requested one.
fn filter(tenants: Option<&[String]>, req: &pb::ListAuditRequest) -> Result<AuditFilter, Status> {
    if req.tenant.len() > MAX_AUDIT_SHORT || req.spiffe_id.len() > MAX_AUDIT_SHORT {
        return Err(Status::invalid_argument(format!(
            "tenant and spiffe_id are at most {MAX_AUDIT_SHORT} bytes"
        )));
    }
    let tenants = match (tenants, req.tenant.as_str()) {
        (scope, "") => scope.map(<[String]>::to_vec),
        (Some(scope), t) if !scope.iter().any(|s| s == t) => {
            return Err(Status::permission_denied(format!(
                "the caller does not administer tenant {t:?}, so its audit records are not \
                 shown; ask its admin or a cluster-admin"
            )));
        }
        (_, t) => Some(vec![t.to_owned()]),
    };
    let since = match u64::try_from(req.since_ms) {
        Ok(0) => None,
        Ok(ms) => Some(UNIX_EPOCH + Duration::from_millis(ms)),
        Err(_) => {
            return Err(Status::invalid_argument(
                "since_ms must be Unix milliseconds (0: no lower bound)",
            ));
        }
    };
    let spiffe_id = (!req.spiffe_id.is_empty()).then(|| req.spiffe_id.clone());
    Ok(AuditFilter {
        tenants,
        since,
        spiffe_id,
    })
}

/// `VerifyAudit`: the whole chain and its checkpoints, against the
/// stored bundle of `td`.
pub(super) async fn verify(
    store: &dyn Store,
    td: &TrustDomain,
) -> Result<pb::VerifyAuditResponse, Status> {
    let bundle = audit::stored_bundle(store, td)
        .await
        .map_err(|e| status::store(&e))?;
    let report = audit::verify(store, td, &bundle)
        .await
        .map_err(|e| status::store(&e))?;
    Ok(response(&report))
}

/// The wire form of a report. When the chain is sound, `problem` carries
/// the note about checkpoints the bundle no longer trusts, if any.
fn response(report: &audit::VerifyReport) -> pb::VerifyAuditResponse {
    let (first_bad_seq, problem) = match &report.problem {
        Some(p) => (p.seq, p.reason.clone()),
        None => (
            0,
            report
                .untrusted_note
                .as_ref()
                .map(|n| format!("{} ({n})", untrusted(report.untrusted_checkpoints)))
                .unwrap_or_default(),
        ),
    };
    pb::VerifyAuditResponse {
        ok: report.ok(),
        records: report.records,
        last_seq: report.last_seq,
        checkpoints: report.checkpoints,
        first_bad_seq,
        problem,
    }
}

fn untrusted(n: i64) -> String {
    if n == 1 {
        "1 checkpoint is signed by a key the bundle no longer trusts".into()
    } else {
        format!("{n} checkpoints are signed by a key the bundle no longer trusts")
    }
}
