//! The audit log's admin calls (`ListAudit`, `VerifyAudit`), called after
//! the caller is authorized.

use meshid_identity::TrustDomain;
use meshid_proto::ca as pb;
use tonic::Status;

use crate::store::Store;

/// `ListAudit` over the records of `tenants` (`None`: every record).
pub(super) async fn list(
    _store: &dyn Store,
    _tenants: Option<&[String]>,
    _req: pb::ListAuditRequest,
) -> Result<pb::ListAuditResponse, Status> {
    Err(Status::unimplemented("ListAudit is not implemented yet"))
}

/// `VerifyAudit`: the whole chain and its checkpoints.
pub(super) async fn verify(
    _store: &dyn Store,
    _td: &TrustDomain,
) -> Result<pb::VerifyAuditResponse, Status> {
    Err(Status::unimplemented("VerifyAudit is not implemented yet"))
}
