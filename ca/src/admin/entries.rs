//! `CreateEntries`, `UpdateEntry`, `DeleteEntry`, `GetEntry`, `ListEntries`.
//!
//! An entry's tenant is the one whose prefixes hold its SPIFFE ID (none: a
//! platform entry). Writing one takes `operator` on that tenant (`admin`
//! for an entry with `admin = true`, `cluster-admin` for a `downstream`
//! one); the tenant never changes on update.

use meshid_proto::ca as pb;
use tonic::Status;

use super::access::Target;
use super::convert::{self, entry_to_proto};
use super::validate::{self, InvalidInput};
use super::{AdminService, MAX_BATCH, next_token, page, status};
use crate::rbac::{Grants, Role};
use crate::store::{Change, Changed, EntryFilter, NewEntry, RegistrationEntry, Tenant};
use crate::tenancy;

/// The role writing an entry with these flags takes.
fn role_for(admin: bool, downstream: bool) -> Role {
    if downstream {
        Role::ClusterAdmin
    } else if admin {
        Role::Admin
    } else {
        Role::Operator
    }
}

impl AdminService {
    pub(super) async fn create_entries(
        &self,
        grants: &Grants,
        req: pb::CreateEntriesRequest,
    ) -> Result<pb::CreateEntriesResponse, Status> {
        let entries = req.entries;
        if entries.is_empty() {
            return Err(Status::invalid_argument(
                "entries is empty; send at least one entry to create",
            ));
        }
        if entries.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "{} entries in one call; the limit is {MAX_BATCH}, split the batch",
                entries.len()
            )));
        }
        let tenants = self.tenants().await?;
        let mut results = Vec::with_capacity(entries.len());
        for entry in &entries {
            let result = match self.create_one(grants, &tenants, entry).await {
                Ok(e) => pb::entry_result::Result::Entry(e),
                Err(s) => pb::entry_result::Result::Error(pb::ItemError {
                    code: s.code() as i32,
                    message: s.message().to_owned(),
                }),
            };
            results.push(pb::EntryResult {
                result: Some(result),
            });
        }
        Ok(pb::CreateEntriesResponse { results })
    }

    /// Every tenant, for placing entries.
    pub(super) async fn tenants(&self) -> Result<Vec<Tenant>, Status> {
        self.store
            .list_tenants()
            .await
            .map_err(|e| status::store(&e))
    }

    async fn create_one(
        &self,
        grants: &Grants,
        tenants: &[Tenant],
        entry: &pb::Entry,
    ) -> Result<pb::Entry, Status> {
        if !entry.id.is_empty() {
            return Err(status::invalid(&InvalidInput::Field {
                field: "id",
                reason: "is assigned by the CA; leave it empty when creating",
            }));
        }
        let mut new = convert::new_entry_from_proto(entry, &self.trust_domain)
            .map_err(|e| status::invalid(&e))?;
        let tenant = placed(tenants, &new, &entry.tenant)?;
        let name = tenant.map_or("", |t| t.name.as_str());
        let spiffe_id = new.spiffe_id.to_string();
        let target = Target {
            action: "entry.create",
            tenant: name,
            target: &spiffe_id,
        };
        self.require_write(grants, role_for(new.admin, new.downstream), target)
            .await?;
        if let Some(t) = tenant
            && let Err(refusal) = self.check_in_tenant(t, &new).await
        {
            return Err(self.refuse(grants, target, refusal).await);
        }
        new.tenant = name.to_owned();
        let stored = entry_of(self.write(grants, Change::CreateEntry(new), target).await?)?;
        tracing::info!(entry_id = %stored.id, spiffe_id = %stored.spiffe_id, tenant = name, "entry created");
        Ok(entry_to_proto(&stored))
    }

    /// The tenancy rules for `new` in `tenant`, looking its parent up as
    /// an agent only when no prefix or allowed parent holds it.
    async fn check_in_tenant(&self, tenant: &Tenant, new: &NewEntry) -> Result<(), Status> {
        let refused = |e: tenancy::TenancyError| Status::invalid_argument(e.to_string());
        if tenancy::check_entry(tenant, new, false).is_ok() {
            return Ok(());
        }
        let agent_of_tenant = match self.store.get_agent(&new.parent_id).await {
            Ok(agent) => agent.is_some_and(|a| a.tenant == tenant.name),
            Err(e) => return Err(status::store(&e)),
        };
        tenancy::check_entry(tenant, new, agent_of_tenant).map_err(refused)
    }

    async fn existing(&self, id: &str) -> Result<RegistrationEntry, Status> {
        match self.store.get_entry(id).await {
            Ok(Some(e)) => Ok(e),
            Ok(None) => Err(Status::not_found(format!(
                "entry {:?} does not exist; `meshid entry list` shows the entries",
                validate::echo(id)
            ))),
            Err(e) => Err(status::store(&e)),
        }
    }

    pub(super) async fn update_entry(
        &self,
        grants: &Grants,
        req: pb::UpdateEntryRequest,
    ) -> Result<pb::Entry, Status> {
        let Some(entry) = req.entry else {
            return Err(Status::invalid_argument(
                "entry is missing; send the entry's new state with its id",
            ));
        };
        if entry.id.is_empty() {
            return Err(Status::invalid_argument(
                "entry.id is empty; name the entry to update (see `meshid entry list`)",
            ));
        }
        if entry.revision < 0 {
            return Err(Status::invalid_argument(
                "entry.revision is negative; send 0 or the revision you read",
            ));
        }
        let mut new = convert::new_entry_from_proto(&entry, &self.trust_domain)
            .map_err(|e| status::invalid(&e))?;
        let before = self.existing(&entry.id).await?;
        let target = Target {
            action: "entry.update",
            tenant: &before.tenant,
            target: &before.id,
        };
        let role =
            role_for(before.admin, before.downstream).max(role_for(new.admin, new.downstream));
        self.require_write(grants, role, target).await?;
        let tenants = self.tenants().await?;
        let after = tenancy::tenant_of(&tenants, &new.spiffe_id);
        let after_name = after.map_or("", |t| t.name.as_str());
        if after_name != before.tenant
            || (!entry.tenant.is_empty() && entry.tenant != before.tenant)
        {
            let refusal = Status::invalid_argument(format!(
                "the entry belongs to {}; its tenant never changes (spiffe_id {} lies in {}): \
                 keep the ID in its tenant, or delete the entry and create a new one",
                tenant_label(&before.tenant),
                new.spiffe_id,
                tenant_label(after_name)
            ));
            return Err(self.refuse(grants, target, refusal).await);
        }
        if let Some(t) = after
            && let Err(refusal) = self.check_in_tenant(t, &new).await
        {
            return Err(self.refuse(grants, target, refusal).await);
        }
        new.tenant = before.tenant.clone();
        let expected = (entry.revision != 0).then_some(entry.revision);
        let change = Change::UpdateEntry {
            id: entry.id.clone(),
            update: convert::entry_update(new),
            expected_revision: expected,
        };
        let updated = entry_of(self.write(grants, change, target).await?)?;
        tracing::info!(entry_id = %updated.id, revision = updated.revision, "entry updated");
        Ok(entry_to_proto(&updated))
    }

    pub(super) async fn delete_entry(
        &self,
        grants: &Grants,
        req: pb::DeleteEntryRequest,
    ) -> Result<pb::Entry, Status> {
        if req.id.is_empty() {
            return Err(Status::invalid_argument(
                "id is empty; name the entry to delete",
            ));
        }
        let before = self.existing(&req.id).await?;
        let target = Target {
            action: "entry.delete",
            tenant: &before.tenant,
            target: &before.id,
        };
        self.require_write(grants, role_for(before.admin, before.downstream), target)
            .await?;
        let gone = entry_of(
            self.write(grants, Change::DeleteEntry(req.id.clone()), target)
                .await?,
        )?;
        tracing::info!(entry_id = %gone.id, spiffe_id = %gone.spiffe_id, "entry deleted");
        Ok(entry_to_proto(&gone))
    }

    pub(super) async fn get_entry(
        &self,
        grants: &Grants,
        req: pb::GetEntryRequest,
    ) -> Result<pb::Entry, Status> {
        if req.id.is_empty() {
            return Err(Status::invalid_argument(
                "id is empty; name the entry to show",
            ));
        }
        let entry = self.existing(&req.id).await?;
        grants
            .require(Role::Viewer, &entry.tenant, "GetEntry")
            .await?;
        Ok(entry_to_proto(&entry))
    }

    pub(super) async fn list_entries(
        &self,
        grants: &Grants,
        req: pb::ListEntriesRequest,
    ) -> Result<pb::ListEntriesResponse, Status> {
        let tenants = if req.by_tenant.is_empty() {
            self.scope(grants, Role::Viewer, "ListEntries")
                .await?
                .filter()
        } else {
            if let Some(reason) = crate::store::tenant_name_problem(&req.by_tenant) {
                return Err(Status::invalid_argument(format!(
                    "by_tenant {:?} {reason}",
                    validate::echo(&req.by_tenant)
                )));
            }
            grants
                .require(Role::Viewer, &req.by_tenant, "ListEntries")
                .await?;
            Some(vec![req.by_tenant.clone()])
        };
        let page = page(&req.page_token, req.page_size)?;
        let opt_id = |field, v: &str| {
            (!v.is_empty())
                .then(|| validate::any_spiffe_id(field, v))
                .transpose()
                .map_err(|e| status::invalid(&e))
        };
        let filter = EntryFilter {
            parent_id: opt_id("by_parent_id", &req.by_parent_id)?,
            spiffe_id: opt_id("by_spiffe_id", &req.by_spiffe_id)?,
            selector: req
                .by_selector
                .as_ref()
                .map(convert::selector_from_proto)
                .transpose()
                .map_err(|e| status::invalid(&e))?,
            // Empty: no owner filter (an operator's entries have owner "").
            owner: (!req.by_owner.is_empty())
                .then(|| validate::owner("by_owner", &req.by_owner))
                .transpose()
                .map_err(|e| status::invalid(&e))?,
            tenants,
        };
        let (entries, next) = self
            .store
            .list_entries(&filter, &page)
            .await
            .map_err(|e| status::store(&e))?;
        Ok(pb::ListEntriesResponse {
            entries: entries.iter().map(entry_to_proto).collect(),
            next_page_token: next_token(next),
        })
    }
}

/// The tenant `new` belongs to; a create that names a tenant must name
/// this one.
fn placed<'a>(
    tenants: &'a [Tenant],
    new: &NewEntry,
    named: &str,
) -> Result<Option<&'a Tenant>, Status> {
    let tenant = tenancy::tenant_of(tenants, &new.spiffe_id);
    if named.is_empty() || tenant.is_some_and(|t| t.name == named) {
        return Ok(tenant);
    }
    Err(Status::invalid_argument(
        match tenants.iter().find(|t| t.name == named) {
            Some(t) => format!(
                "spiffe_id {} is outside tenant {named} (its prefixes: {}); choose an ID under \
                 one of them",
                new.spiffe_id,
                t.spiffe_id_prefixes.join(", ")
            ),
            None => format!(
                "tenant {:?} does not exist; `meshid tenant list` shows the tenants",
                validate::echo(named)
            ),
        },
    ))
}

fn tenant_label(tenant: &str) -> String {
    if tenant.is_empty() {
        "the platform (no tenant)".to_owned()
    } else {
        format!("tenant {tenant}")
    }
}

fn entry_of(changed: Changed) -> Result<RegistrationEntry, Status> {
    match changed {
        Changed::Entry(e) => Ok(e),
        other => Err(unexpected(&other)),
    }
}

/// A store that answered a change with the wrong kind of result.
pub(super) fn unexpected(changed: &Changed) -> Status {
    tracing::error!(
        ?changed,
        "the store answered a change with another kind of result"
    );
    Status::internal("the store answered with an unexpected result; see the CA's log")
}
