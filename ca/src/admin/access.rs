//! The step every admin call shares: who is calling and what they hold,
//! the role check of a write (a denial is recorded in the audit log), and
//! the audited write itself (a failure is recorded too).

use tonic::{Request, Status};

use super::{AdminService, status};
use crate::rbac::{Caller, Grants, Role, Scope};
use crate::store::{AuditEvent, Change, Changed};

/// What an audit record says about its object.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    /// The audit action (`entry.create`, …).
    pub action: &'a str,
    /// The object's tenant (`""`: the platform).
    pub tenant: &'a str,
    /// The object (entry ID, SPIFFE ID, tenant name, key ID, …).
    pub target: &'a str,
}

impl AdminService {
    /// The caller of `req` and the roles they hold.
    pub(super) async fn grants<T>(&self, req: &Request<T>) -> Result<Grants, Status> {
        let caller = Caller::identify(req, self.authorizer.kube()).await?;
        self.authorizer.grants(caller).await
    }

    /// Checks that the caller holds `role` on `t.tenant` for a write; a
    /// denial is appended to the audit log before it is returned.
    pub(super) async fn require_write(
        &self,
        grants: &Grants,
        role: Role,
        t: Target<'_>,
    ) -> Result<(), Status> {
        match grants.require(role, t.tenant, t.action).await {
            Ok(()) => Ok(()),
            Err(denied) => {
                self.record(grants, t, format!("denied: {}", denied.message()))
                    .await;
                Err(denied)
            }
        }
    }

    /// Records `refusal` (a write refused after authorization, e.g. an
    /// entry outside its tenant) as failed and returns it.
    pub(super) async fn refuse(&self, grants: &Grants, t: Target<'_>, refusal: Status) -> Status {
        self.record(grants, t, format!("failed: {}", refusal.message()))
            .await;
        refusal
    }

    /// Applies `change` with its audit record in one transaction; a failed
    /// change is recorded on its own.
    pub(super) async fn write(
        &self,
        grants: &Grants,
        change: Change,
        t: Target<'_>,
    ) -> Result<Changed, Status> {
        let event = event(grants.caller().actor(), t, "ok".into());
        match self.store.audited(change, event).await {
            Ok(changed) => Ok(changed),
            Err(e) => {
                let s = status::store(&e);
                self.record(grants, t, format!("failed: {}", s.message()))
                    .await;
                Err(s)
            }
        }
    }

    /// Appends a record of its own (a denial, a failure, a rotation step).
    /// The call's answer does not depend on it: a store that cannot take
    /// the record is logged.
    pub(super) async fn record(&self, grants: &Grants, t: Target<'_>, result: String) {
        let event = event(grants.caller().actor(), t, result);
        if let Err(e) = self.store.append_audit(event).await {
            tracing::warn!(error = %e, action = t.action, "could not append the audit record");
        }
    }

    /// The tenants the caller may see at `role`; `PermissionDenied` when
    /// none (a caller without any role learns nothing).
    pub(super) async fn scope(
        &self,
        grants: &Grants,
        role: Role,
        action: &str,
    ) -> Result<Scope, Status> {
        let scope = grants.scope(role).await?;
        if scope == Scope::Tenants(Vec::new()) {
            return Err(Status::permission_denied(format!(
                "{actor} lacks role {role} on any tenant ({action}); an admin of a tenant can \
                 grant it: `meshid rbac bind --subject {actor} --role {role} --tenant <tenant>`",
                actor = grants.caller().actor(),
                role = role.as_str()
            )));
        }
        Ok(scope)
    }

    /// The tenants the caller administers (`ListAudit`, `ListBindings`).
    pub(super) async fn administered(
        &self,
        grants: &Grants,
        action: &str,
    ) -> Result<Scope, Status> {
        self.scope(grants, Role::Admin, action).await
    }
}

fn event(actor: &str, t: Target<'_>, result: String) -> AuditEvent {
    AuditEvent {
        actor: actor.to_owned(),
        action: t.action.to_owned(),
        tenant: t.tenant.to_owned(),
        target: t.target.to_owned(),
        before: String::new(),
        after: String::new(),
        result,
    }
}
