//! `Bind`, `Unbind`, `ListBindings`, `WhoAmI`.
//!
//! An admin of a tenant binds and unbinds its viewers, operators and
//! admins; only a cluster-admin binds cluster-admins. Config bindings are
//! listed beside the stored ones and cannot be unbound here.

use meshid_proto::ca as pb;
use tonic::Status;

use super::access::Target;
use super::convert::binding_to_proto;
use super::entries::unexpected;
use super::{AdminService, validate};
use crate::rbac::{Grants, Role, RoleBinding, Source};
use crate::store::{Change, Changed};

impl AdminService {
    /// The binding of a request, checked: subject syntax, role name,
    /// tenant present exactly when the role is not cluster-admin.
    fn requested(&self, wire: Option<pb::RoleBinding>) -> Result<RoleBinding, Status> {
        let Some(b) = wire else {
            return Err(Status::invalid_argument(
                "binding is missing; send its subject, role and tenant",
            ));
        };
        let subject = crate::rbac::check_subject(&b.subject, &self.trust_domain)
            .map_err(|e| Status::invalid_argument(format!("subject {e}")))?;
        let role: Role = b.role.parse().map_err(|e: crate::store::UnknownRole| {
            Status::invalid_argument(format!("role: {e}"))
        })?;
        match (role, b.tenant.is_empty()) {
            (Role::ClusterAdmin, false) => Err(Status::invalid_argument(
                "tenant: cluster-admin holds on every tenant; bind it without a tenant",
            )),
            (Role::ClusterAdmin, true) => Ok(String::new()),
            (_, true) => Err(Status::invalid_argument(format!(
                "tenant is empty; a {role} binding holds on one tenant (--tenant NAME)"
            ))),
            (_, false) => match crate::store::tenant_name_problem(&b.tenant) {
                None => Ok(b.tenant.clone()),
                Some(reason) => Err(Status::invalid_argument(format!(
                    "tenant {:?} {reason}",
                    validate::echo(&b.tenant)
                ))),
            },
        }
        .map(|tenant| RoleBinding {
            subject,
            role,
            tenant,
            created_at: std::time::UNIX_EPOCH,
        })
    }

    /// The role that may grant or revoke `b`.
    fn granting_role(b: &RoleBinding) -> Role {
        if b.role == Role::ClusterAdmin {
            Role::ClusterAdmin
        } else {
            Role::Admin
        }
    }

    pub(super) async fn bind(
        &self,
        grants: &Grants,
        wire: Option<pb::RoleBinding>,
    ) -> Result<pb::RoleBinding, Status> {
        let binding = self.requested(wire)?;
        let target = Target {
            action: "rbac.bind",
            tenant: &binding.tenant,
            target: &binding.subject,
        };
        self.require_write(grants, Self::granting_role(&binding), target)
            .await?;
        let result = self
            .write(grants, Change::Bind(binding.clone()), target)
            .await;
        self.authorizer.invalidate();
        let stored = binding_of(result?)?;
        tracing::info!(subject = %stored.subject, role = %stored.role, tenant = %stored.tenant, "role bound");
        Ok(binding_to_proto(&stored, Source::Store.as_str()))
    }

    pub(super) async fn unbind(
        &self,
        grants: &Grants,
        wire: Option<pb::RoleBinding>,
    ) -> Result<pb::RoleBinding, Status> {
        let binding = self.requested(wire)?;
        let target = Target {
            action: "rbac.unbind",
            tenant: &binding.tenant,
            target: &binding.subject,
        };
        self.require_write(grants, Self::granting_role(&binding), target)
            .await?;
        if self.authorizer.config_bindings().contains(&binding) {
            let refusal = Status::failed_precondition(format!(
                "{} is bound as {} in the CA's config ([[rbac.bindings]]); remove it from ca.toml \
                 and restart the CA",
                binding.subject, binding.role
            ));
            return Err(self.refuse(grants, target, refusal).await);
        }
        let result = self
            .write(grants, Change::Unbind(binding.clone()), target)
            .await;
        self.authorizer.invalidate();
        let gone = binding_of(result?)?;
        tracing::info!(subject = %gone.subject, role = %gone.role, tenant = %gone.tenant, "role unbound");
        Ok(binding_to_proto(&gone, Source::Store.as_str()))
    }

    pub(super) async fn list_bindings(
        &self,
        grants: &Grants,
        req: pb::ListBindingsRequest,
    ) -> Result<pb::ListBindingsResponse, Status> {
        let scope = if req.tenant.is_empty() {
            self.administered(grants, "ListBindings").await?
        } else {
            grants
                .require(Role::Admin, &req.tenant, "ListBindings")
                .await?;
            crate::rbac::Scope::Tenants(vec![req.tenant.clone()])
        };
        let all = self.authorizer.bindings().await?;
        Ok(pb::ListBindingsResponse {
            bindings: all
                .iter()
                .filter(|h| scope.includes(&h.binding.tenant))
                .filter(|h| req.subject.is_empty() || h.binding.subject == req.subject)
                .map(|h| binding_to_proto(&h.binding, h.source.as_str()))
                .collect(),
        })
    }
}

/// `WhoAmI`: anyone may ask.
pub(super) fn who_am_i(grants: &Grants) -> pb::WhoAmIResponse {
    pb::WhoAmIResponse {
        subjects: grants.caller().subjects().to_vec(),
        roles: grants
            .held()
            .iter()
            .map(|h| binding_to_proto(&h.binding, h.source.as_str()))
            .collect(),
    }
}

fn binding_of(changed: Changed) -> Result<RoleBinding, Status> {
    match changed {
        Changed::Binding(b) => Ok(b),
        other => Err(unexpected(&other)),
    }
}
