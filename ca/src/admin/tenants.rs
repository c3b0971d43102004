//! `CreateTenant`, `GetTenant`, `ListTenants`, `DeleteTenant`: tenants are
//! made and removed by a cluster-admin and seen by whoever holds a role on
//! them.

use meshid_proto::ca as pb;
use tonic::Status;

use super::access::Target;
use super::convert::{tenant_from_proto, tenant_to_proto};
use super::entries::unexpected;
use super::{AdminService, status, validate};
use crate::rbac::{Grants, Role};
use crate::store::{Change, Changed, Tenant};
use crate::tenancy;

impl AdminService {
    pub(super) async fn create_tenant(
        &self,
        grants: &Grants,
        req: pb::CreateTenantRequest,
    ) -> Result<pb::Tenant, Status> {
        let Some(wire) = req.tenant else {
            return Err(Status::invalid_argument(
                "tenant is missing; send its name and spiffe_id_prefixes",
            ));
        };
        let name = validate::echo(&wire.name);
        let target = Target {
            action: "tenant.create",
            tenant: "",
            target: &name,
        };
        self.require_write(grants, Role::ClusterAdmin, target)
            .await?;
        let tenant = tenant_from_proto(&wire).map_err(|e| status::invalid(&e))?;
        let others = self.tenants().await?;
        let tenant = match tenancy::check_tenant(tenant, &self.trust_domain, &others) {
            Ok(t) => t,
            Err(e) => {
                let refusal = Status::invalid_argument(e.to_string());
                return Err(self.refuse(grants, target, refusal).await);
            }
        };
        let stored = tenant_of(
            self.write(grants, Change::CreateTenant(tenant), target)
                .await?,
        )?;
        tracing::info!(tenant = %stored.name, "tenant created");
        Ok(tenant_to_proto(&stored))
    }

    pub(super) async fn get_tenant(
        &self,
        grants: &Grants,
        req: pb::GetTenantRequest,
    ) -> Result<pb::Tenant, Status> {
        let name = checked_name(&req.name)?;
        grants.require(Role::Viewer, name, "GetTenant").await?;
        match self.store.get_tenant(name).await {
            Ok(Some(t)) => Ok(tenant_to_proto(&t)),
            Ok(None) => Err(missing(name)),
            Err(e) => Err(status::store(&e)),
        }
    }

    pub(super) async fn list_tenants(
        &self,
        grants: &Grants,
    ) -> Result<pb::ListTenantsResponse, Status> {
        let scope = self.scope(grants, Role::Viewer, "ListTenants").await?;
        let tenants = self.tenants().await?;
        Ok(pb::ListTenantsResponse {
            tenants: tenants
                .iter()
                .filter(|t| scope.includes(&t.name))
                .map(tenant_to_proto)
                .collect(),
        })
    }

    pub(super) async fn delete_tenant(
        &self,
        grants: &Grants,
        req: pb::DeleteTenantRequest,
    ) -> Result<pb::Tenant, Status> {
        let name = checked_name(&req.name)?;
        let target = Target {
            action: "tenant.delete",
            tenant: "",
            target: name,
        };
        self.require_write(grants, Role::ClusterAdmin, target)
            .await?;
        if self
            .authorizer
            .config_bindings()
            .iter()
            .any(|b| b.tenant == name)
        {
            let refusal = Status::failed_precondition(format!(
                "tenant {name} has bindings in the CA's config ([[rbac.bindings]]); remove them \
                 from ca.toml first"
            ));
            return Err(self.refuse(grants, target, refusal).await);
        }
        let gone = tenant_of(
            self.write(grants, Change::DeleteTenant(name.to_owned()), target)
                .await?,
        )?;
        self.authorizer.invalidate();
        tracing::info!(tenant = %gone.name, "tenant deleted");
        Ok(tenant_to_proto(&gone))
    }
}

fn checked_name(name: &str) -> Result<&str, Status> {
    match crate::store::tenant_name_problem(name) {
        None => Ok(name),
        Some(reason) => Err(Status::invalid_argument(format!(
            "name {:?} {reason}",
            validate::echo(name)
        ))),
    }
}

fn missing(name: &str) -> Status {
    Status::not_found(format!(
        "tenant {name} does not exist; `meshid tenant list` shows the tenants"
    ))
}

fn tenant_of(changed: Changed) -> Result<Tenant, Status> {
    match changed {
        Changed::Tenant(t) => Ok(t),
        other => Err(unexpected(&other)),
    }
}
