//! `CreateJoinToken`, `ListAgents`, `GetAgent`, `EvictAgent`, `BanAgent`.
//!
//! A join token belongs to the tenant the request names (`admin` of it
//! creates one), and so does the agent attested with it; agents of other
//! node attestors are the platform's.

use std::time::Duration;

use meshid_identity::SpiffeId;
use meshid_proto::ca as pb;
use tonic::Status;

use super::access::Target;
use super::convert::{agent_to_proto, unix_seconds};
use super::entries::unexpected;
use super::{AdminService, next_token, page, status, validate};
use crate::rbac::{Grants, Role};
use crate::store::{Agent, Change, Changed};
use crate::tenancy;

impl AdminService {
    pub(super) async fn create_join_token(
        &self,
        grants: &Grants,
        req: pb::CreateJoinTokenRequest,
    ) -> Result<pb::JoinToken, Status> {
        let ttl = if req.ttl_seconds == 0 {
            self.defaults.token_ttl
        } else {
            validate::ttl(
                "ttl_seconds",
                req.ttl_seconds,
                Duration::from_secs(1),
                validate::MAX_TOKEN_TTL,
            )
            .map_err(|e| status::invalid(&e))?
        };
        let alias = (!req.spiffe_id.is_empty())
            .then(|| validate::workload_id("spiffe_id", &req.spiffe_id, &self.trust_domain))
            .transpose()
            .map_err(|e| status::invalid(&e))?;
        if !req.tenant.is_empty()
            && let Some(reason) = crate::store::tenant_name_problem(&req.tenant)
        {
            return Err(Status::invalid_argument(format!(
                "tenant {:?} {reason}",
                validate::echo(&req.tenant)
            )));
        }
        let mut issued = token::issue(&self.trust_domain, self.now(), ttl, alias)?;
        let id = issued.record.id.clone();
        let target = Target {
            action: "token.create",
            tenant: &req.tenant,
            target: &id,
        };
        self.require_write(grants, Role::Admin, target).await?;
        if let Err(refusal) = self
            .check_token(&req.tenant, issued.record.spiffe_id.as_ref())
            .await
        {
            return Err(self.refuse(grants, target, refusal).await);
        }
        issued.record.tenant = req.tenant.clone();
        let expires_at = issued.record.expires_at;
        match self
            .write(grants, Change::CreateJoinToken(issued.record), target)
            .await?
        {
            Changed::JoinToken => {}
            other => return Err(unexpected(&other)),
        }
        tracing::info!(token_id = %id, agent_id = %issued.agent_id, tenant = %req.tenant, "join token created");
        Ok(pb::JoinToken {
            token: issued.token,
            id,
            expires_at: unix_seconds(expires_at),
            agent_spiffe_id: issued.agent_id.to_string(),
            tenant: req.tenant,
        })
    }

    /// A tenant's token: the tenant exists and holds the alias; a platform
    /// token's alias lies outside every tenant.
    async fn check_token(&self, tenant: &str, alias: Option<&SpiffeId>) -> Result<(), Status> {
        let tenants = self.tenants().await?;
        let own = if tenant.is_empty() {
            None
        } else {
            Some(tenants.iter().find(|t| t.name == tenant).ok_or_else(|| {
                Status::not_found(format!(
                    "tenant {tenant} does not exist; `meshid tenant list` shows the tenants"
                ))
            })?)
        };
        if let Some(alias) = alias {
            tenancy::check_alias(own, alias, tenancy::tenant_of(&tenants, alias))
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        Ok(())
    }

    pub(super) async fn list_agents(
        &self,
        grants: &Grants,
        req: pb::ListAgentsRequest,
    ) -> Result<pb::ListAgentsResponse, Status> {
        let scope = self.scope(grants, Role::Viewer, "ListAgents").await?;
        let page = page(&req.page_token, req.page_size)?;
        let (agents, next) = self
            .store
            .list_agents(&page)
            .await
            .map_err(|e| status::store(&e))?;
        // The page is cut from every agent; a caller scoped to some
        // tenants sees theirs (a page may hold fewer, the cursor goes on).
        Ok(pb::ListAgentsResponse {
            agents: agents
                .iter()
                .filter(|a| scope.includes(&a.tenant))
                .map(agent_to_proto)
                .collect(),
            next_page_token: next_token(next),
        })
    }

    async fn agent(&self, raw: &str) -> Result<(SpiffeId, Agent), Status> {
        let id = validate::any_spiffe_id("spiffe_id", raw).map_err(|e| status::invalid(&e))?;
        match self.store.get_agent(&id).await {
            Ok(Some(a)) => Ok((id, a)),
            Ok(None) => Err(Status::not_found(format!(
                "agent {id} is not known to this CA; `meshid agent list` shows the attested agents"
            ))),
            Err(e) => Err(status::store(&e)),
        }
    }

    pub(super) async fn get_agent(
        &self,
        grants: &Grants,
        req: pb::AgentRequest,
    ) -> Result<pb::Agent, Status> {
        let (_, agent) = self.agent(&req.spiffe_id).await?;
        grants
            .require(Role::Viewer, &agent.tenant, "GetAgent")
            .await?;
        Ok(agent_to_proto(&agent))
    }

    /// `EvictAgent` (`ban` false) or `BanAgent`: `admin` of its tenant.
    pub(super) async fn evict_or_ban(
        &self,
        grants: &Grants,
        req: pb::AgentRequest,
        ban: bool,
    ) -> Result<pb::Agent, Status> {
        let (id, agent) = self.agent(&req.spiffe_id).await?;
        let target = Target {
            action: if ban { "agent.ban" } else { "agent.evict" },
            tenant: &agent.tenant,
            target: id.as_str(),
        };
        self.require_write(grants, Role::Admin, target).await?;
        let change = if ban {
            Change::BanAgent(id.clone())
        } else {
            Change::DeleteAgent(id.clone())
        };
        let mut before = match self.write(grants, change, target).await? {
            Changed::Agent(a) => a,
            other => return Err(unexpected(&other)),
        };
        if ban {
            before.banned = true;
            tracing::info!(agent_id = %id, "agent banned");
        } else {
            tracing::info!(agent_id = %id, "agent evicted");
        }
        Ok(agent_to_proto(&before))
    }
}

mod token {
    //! Join-token issuance, delegated to the join-token node attestor.

    use std::time::{Duration, SystemTime};

    use meshid_identity::{SpiffeId, TrustDomain};
    use tonic::Status;

    use crate::node_attestor::join_token;
    use crate::store::JoinToken;

    /// A freshly generated token.
    pub(super) struct Issued {
        pub token: String,
        pub record: JoinToken,
        pub agent_id: SpiffeId,
    }

    pub(super) fn issue(
        td: &TrustDomain,
        now: SystemTime,
        ttl: Duration,
        alias: Option<SpiffeId>,
    ) -> Result<Issued, Status> {
        let (token, record) = join_token::generate(now, ttl, alias);
        let agent_id = join_token::agent_id(td, &record.id)
            .map_err(|e| Status::internal(format!("generated token ID is unusable: {e}")))?;
        Ok(Issued {
            token,
            record,
            agent_id,
        })
    }
}
