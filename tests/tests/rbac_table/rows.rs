//! The table: one row per admin RPC (a few RPCs have two rows: a flag
//! that raises the role, or a listing filtered and unfiltered), with the
//! role it needs, the columns it runs in, its CLI form and its gRPC form.

use meshid_proto::ca::admin_client::AdminClient;
use meshid_proto::ca::{self as pb, entry_result};
use tonic::Status;
use tonic::transport::Channel;

use super::callers::{Need, Role};
use super::world::{Col, TD, World, new_binding, new_tenant};

/// One admin call of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    CreateEntry,
    CreateAdminEntry,
    CreateDownstreamEntry,
    UpdateEntry,
    DeleteEntry,
    GetEntry,
    ListEntriesOfTenant,
    ListEntries,
    CreateJoinToken,
    ListAgents,
    GetAgent,
    EvictAgent,
    BanAgent,
    GetBundle,
    SetFederatedBundle,
    GetAuthority,
    ListKeySlots,
    PrepareKey,
    ActivateKey,
    TaintKey,
    RevokeKey,
    CreateTenant,
    GetTenant,
    ListTenants,
    DeleteTenant,
    Bind,
    Unbind,
    ListBindingsOfTenant,
    ListBindings,
    WhoAmI,
    ListAuditOfTenant,
    ListAudit,
    VerifyAudit,
}

/// One row: the RPC, what it needs, where its resource lives.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub rpc: Rpc,
    pub need: Need,
    /// The columns (resource tenants); empty for an RPC without one.
    pub cols: &'static [Col],
    /// The CLI reads the resource (GetEntry) before it writes.
    pub read_first: bool,
    /// Allowed means "got past authorization": the step itself may be
    /// refused for what it is (nothing prepared, an unknown key ID).
    pub loose: bool,
}

const fn row(rpc: Rpc, need: Need, cols: &'static [Col]) -> Row {
    Row {
        rpc,
        need,
        cols,
        read_first: false,
        loose: false,
    }
}

const ALL: &[Col] = &Col::ALL;
const TENANTS: &[Col] = &Col::TENANTS;
const NONE: &[Col] = &[];
const CLUSTER: Need = Need::On(Role::ClusterAdmin);

/// The design's RPC → role table.
pub const ROWS: &[Row] = &[
    row(Rpc::CreateEntry, Need::On(Role::Operator), ALL),
    row(Rpc::CreateAdminEntry, Need::On(Role::Admin), ALL),
    row(Rpc::CreateDownstreamEntry, CLUSTER, ALL),
    Row {
        read_first: true,
        ..row(Rpc::UpdateEntry, Need::On(Role::Operator), ALL)
    },
    row(Rpc::DeleteEntry, Need::On(Role::Operator), ALL),
    row(Rpc::GetEntry, Need::On(Role::Viewer), ALL),
    row(Rpc::ListEntriesOfTenant, Need::On(Role::Viewer), TENANTS),
    row(Rpc::ListEntries, Need::Listed(Role::Viewer), ALL),
    row(Rpc::CreateJoinToken, Need::On(Role::Admin), ALL),
    row(Rpc::ListAgents, Need::Listed(Role::Viewer), ALL),
    row(Rpc::GetAgent, Need::On(Role::Viewer), ALL),
    row(Rpc::EvictAgent, Need::On(Role::Admin), ALL),
    row(Rpc::BanAgent, Need::On(Role::Admin), ALL),
    row(Rpc::GetBundle, Need::Any, NONE),
    row(Rpc::SetFederatedBundle, CLUSTER, NONE),
    row(Rpc::GetAuthority, Need::Any, NONE),
    row(Rpc::ListKeySlots, Need::Any, NONE),
    Row {
        loose: true,
        ..row(Rpc::PrepareKey, CLUSTER, NONE)
    },
    Row {
        loose: true,
        ..row(Rpc::ActivateKey, CLUSTER, NONE)
    },
    Row {
        loose: true,
        ..row(Rpc::TaintKey, CLUSTER, NONE)
    },
    Row {
        loose: true,
        ..row(Rpc::RevokeKey, CLUSTER, NONE)
    },
    row(Rpc::CreateTenant, CLUSTER, NONE),
    row(Rpc::GetTenant, Need::On(Role::Viewer), TENANTS),
    row(Rpc::ListTenants, Need::Listed(Role::Viewer), TENANTS),
    row(Rpc::DeleteTenant, CLUSTER, NONE),
    // Viewer bindings on a tenant; cluster-admin bindings on the platform.
    row(Rpc::Bind, Need::On(Role::Admin), ALL),
    row(Rpc::Unbind, Need::On(Role::Admin), ALL),
    row(Rpc::ListBindingsOfTenant, Need::On(Role::Admin), TENANTS),
    row(Rpc::ListBindings, Need::Listed(Role::Admin), ALL),
    row(Rpc::WhoAmI, Need::Anyone, NONE),
    row(Rpc::ListAuditOfTenant, Need::On(Role::Admin), TENANTS),
    row(Rpc::ListAudit, Need::Listed(Role::Admin), ALL),
    row(Rpc::VerifyAudit, CLUSTER, NONE),
];

/// A key ID no slot has.
const NO_SUCH_KEY: &str = "00ff00ff00ff00ff";

impl Rpc {
    /// The cell's object, made fresh when the call consumes it: a SPIFFE
    /// ID, entry or agent ID, tenant name, binding subject, or the marker
    /// a listing should (not) show.
    pub async fn target(self, w: &World, col: Option<Col>) -> String {
        let col = col.unwrap_or(Col::P);
        match self {
            Rpc::CreateEntry | Rpc::CreateAdminEntry | Rpc::CreateDownstreamEntry => {
                format!("{}/c{}", col.prefix(), w.next())
            }
            Rpc::UpdateEntry | Rpc::GetEntry | Rpc::ListEntries => w.entry[&col].clone(),
            Rpc::DeleteEntry => w.fresh_entry(col).await,
            Rpc::GetAgent | Rpc::ListAgents => w.agent[&col].id.clone(),
            Rpc::EvictAgent | Rpc::BanAgent => w.attest(col).await.id,
            Rpc::CreateTenant => format!("n{}", w.next()),
            Rpc::DeleteTenant => w.fresh_tenant().await,
            Rpc::Bind => new_binding(w.next(), col).subject,
            Rpc::Unbind => w.fresh_binding(col).await.subject,
            Rpc::ListBindings => match col {
                Col::A => "uid:2001",
                Col::B => "uid:2006",
                Col::P => "uid:2004",
            }
            .into(),
            Rpc::TaintKey | Rpc::RevokeKey => NO_SUCH_KEY.into(),
            _ => col.tenant().into(),
        }
    }

    /// The `meshid` arguments of the call (the socket is added).
    pub fn cli(self, w: &World, col: Option<Col>, t: &str) -> Vec<String> {
        let col = col.unwrap_or(Col::P);
        let tenant_flag = |args: &mut Vec<String>| {
            if !col.tenant().is_empty() {
                args.extend(["--tenant".into(), col.tenant().into()]);
            }
        };
        let create = |extra: &[&str]| {
            let mut a = strings(&["entry", "create", "--spiffe-id", t, "--parent-id"]);
            a.push(w.agent[&col].id.clone());
            a.extend(strings(&["--selector", "unix:uid:1"]));
            a.extend(strings(extra));
            a
        };
        let binding = |verb: &str| {
            let b = binding_of(t, col);
            let mut a = strings(&["rbac", verb, "--subject", &b.subject, "--role", &b.role]);
            tenant_flag(&mut a);
            a
        };
        match self {
            Rpc::CreateEntry => create(&[]),
            Rpc::CreateAdminEntry => create(&["--admin"]),
            Rpc::CreateDownstreamEntry => create(&["--downstream"]),
            Rpc::UpdateEntry => strings(&["entry", "update", t, "--x509-ttl", "30m"]),
            Rpc::DeleteEntry => strings(&["entry", "delete", t]),
            Rpc::GetEntry => strings(&["entry", "show", t]),
            Rpc::ListEntriesOfTenant => strings(&["entry", "list", "--tenant", t]),
            Rpc::ListEntries => strings(&["entry", "list", "--output", "json"]),
            Rpc::CreateJoinToken => {
                let mut a = strings(&["token", "generate"]);
                tenant_flag(&mut a);
                a
            }
            Rpc::ListAgents => strings(&["agent", "list", "--output", "json"]),
            Rpc::GetAgent => strings(&["agent", "show", t]),
            Rpc::EvictAgent => strings(&["agent", "evict", t]),
            Rpc::BanAgent => strings(&["agent", "ban", t]),
            Rpc::GetBundle => strings(&["bundle", "show"]),
            Rpc::SetFederatedBundle => {
                let mut a = strings(&["bundle", "set", "--trust-domain", "partner.org", "--file"]);
                a.push(w.partner_bundle.display().to_string());
                a
            }
            Rpc::GetAuthority => strings(&["ca", "show"]),
            Rpc::ListKeySlots => strings(&["ca", "rotation", "show"]),
            Rpc::PrepareKey => strings(&["ca", "rotation", "prepare", "--kind", "jwt"]),
            Rpc::ActivateKey => {
                strings(&["ca", "rotation", "activate", "--kind", "jwt", "--force"])
            }
            Rpc::TaintKey => strings(&["ca", "rotation", "taint", t]),
            Rpc::RevokeKey => strings(&["ca", "rotation", "revoke", t]),
            Rpc::CreateTenant => {
                let prefix = format!("spiffe://{TD}/{t}");
                strings(&["tenant", "create", t, "--prefix", &prefix])
            }
            Rpc::GetTenant => strings(&["tenant", "show", t]),
            Rpc::ListTenants => strings(&["tenant", "list", "--output", "json"]),
            Rpc::DeleteTenant => strings(&["tenant", "delete", t]),
            Rpc::Bind => binding("bind"),
            Rpc::Unbind => binding("unbind"),
            Rpc::ListBindingsOfTenant => strings(&["rbac", "list", "--tenant", t]),
            Rpc::ListBindings => strings(&["rbac", "list", "--output", "json"]),
            Rpc::WhoAmI => strings(&["rbac", "whoami"]),
            Rpc::ListAuditOfTenant => strings(&["audit", "list", "--tenant", t]),
            Rpc::ListAudit => strings(&["audit", "export"]),
            Rpc::VerifyAudit => strings(&["audit", "verify"]),
        }
    }

    /// What a listing's CLI output (JSON) shows, to look for the marker.
    pub fn listed_cli(self, stdout: &str) -> Vec<String> {
        let field = |key: &str, name: &str| -> Vec<String> {
            let v: serde_json::Value = serde_json::from_str(stdout)
                .unwrap_or_else(|e| panic!("{self:?}: not JSON ({e}):\n{stdout}"));
            v[key]
                .as_array()
                .unwrap_or_else(|| panic!("{self:?}: no {key} in:\n{stdout}"))
                .iter()
                .filter_map(|x| x[name].as_str().map(str::to_owned))
                .collect()
        };
        match self {
            Rpc::ListEntries => field("entries", "id"),
            Rpc::ListAgents => field("agents", "spiffe_id"),
            Rpc::ListTenants => field("tenants", "name"),
            Rpc::ListBindings => field("bindings", "subject"),
            Rpc::ListAudit => stdout
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l)
                        .unwrap_or_else(|e| panic!("export line not JSON ({e}): {l}"));
                    v["tenant"].as_str().unwrap_or_default().to_owned()
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The call over gRPC; for a listing, what it shows.
    pub async fn grpc(
        self,
        c: &mut AdminClient<Channel>,
        w: &World,
        col: Option<Col>,
        t: &str,
    ) -> Result<Vec<String>, Status> {
        let col = col.unwrap_or(Col::P);
        let tenant = col.tenant().to_owned();
        match self {
            Rpc::CreateEntry | Rpc::CreateAdminEntry | Rpc::CreateDownstreamEntry => {
                let entry = pb::Entry {
                    spiffe_id: t.into(),
                    parent_id: w.agent[&col].id.clone(),
                    selectors: vec![pb::Selector {
                        r#type: "unix".into(),
                        value: "uid:1".into(),
                    }],
                    admin: self == Rpc::CreateAdminEntry,
                    downstream: self == Rpc::CreateDownstreamEntry,
                    ..Default::default()
                };
                let resp = c
                    .create_entries(pb::CreateEntriesRequest {
                        entries: vec![entry],
                    })
                    .await?
                    .into_inner();
                match resp.results.into_iter().next().and_then(|r| r.result) {
                    Some(entry_result::Result::Entry(_)) => Ok(Vec::new()),
                    Some(entry_result::Result::Error(e)) => {
                        Err(Status::new(tonic::Code::from_i32(e.code), e.message))
                    }
                    None => Err(Status::internal("no result")),
                }
            }
            Rpc::UpdateEntry => {
                let mut e = w
                    .root()
                    .get_entry(pb::GetEntryRequest { id: t.into() })
                    .await
                    .unwrap_or_else(|s| panic!("root get_entry: {s:?}"))
                    .into_inner();
                e.x509_svid_ttl_seconds = 1800;
                c.update_entry(pb::UpdateEntryRequest { entry: Some(e) })
                    .await
                    .map(nothing)
            }
            Rpc::DeleteEntry => c
                .delete_entry(pb::DeleteEntryRequest { id: t.into() })
                .await
                .map(nothing),
            Rpc::GetEntry => c
                .get_entry(pb::GetEntryRequest { id: t.into() })
                .await
                .map(nothing),
            Rpc::ListEntriesOfTenant | Rpc::ListEntries => {
                let by_tenant = if self == Rpc::ListEntries {
                    String::new()
                } else {
                    t.into()
                };
                let resp = c
                    .list_entries(pb::ListEntriesRequest {
                        page_size: 1000,
                        by_tenant,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Ok(resp.entries.into_iter().map(|e| e.id).collect())
            }
            Rpc::CreateJoinToken => c
                .create_join_token(pb::CreateJoinTokenRequest {
                    ttl_seconds: 60,
                    spiffe_id: String::new(),
                    tenant,
                })
                .await
                .map(nothing),
            Rpc::ListAgents => {
                let resp = c
                    .list_agents(pb::ListAgentsRequest {
                        page_token: String::new(),
                        page_size: 1000,
                    })
                    .await?
                    .into_inner();
                Ok(resp.agents.into_iter().map(|a| a.spiffe_id).collect())
            }
            Rpc::GetAgent => c.get_agent(agent(t)).await.map(nothing),
            Rpc::EvictAgent => c.evict_agent(agent(t)).await.map(nothing),
            Rpc::BanAgent => c.ban_agent(agent(t)).await.map(nothing),
            Rpc::GetBundle => c
                .get_bundle(pb::GetBundleRequest::default())
                .await
                .map(nothing),
            Rpc::SetFederatedBundle => c
                .set_federated_bundle(pb::SetFederatedBundleRequest {
                    trust_domain: "partner.org".into(),
                    spiffe_json: std::fs::read(&w.partner_bundle).unwrap(),
                })
                .await
                .map(nothing),
            Rpc::GetAuthority => c
                .get_authority(pb::GetAuthorityRequest {})
                .await
                .map(nothing),
            Rpc::ListKeySlots => c
                .list_key_slots(pb::ListKeySlotsRequest {})
                .await
                .map(nothing),
            Rpc::PrepareKey => c
                .prepare_key(pb::PrepareKeyRequest {
                    kind: pb::KeyKind::Jwt.into(),
                })
                .await
                .map(nothing),
            Rpc::ActivateKey => c
                .activate_key(pb::ActivateKeyRequest {
                    kind: pb::KeyKind::Jwt.into(),
                    force: true,
                })
                .await
                .map(nothing),
            Rpc::TaintKey => c
                .taint_key(pb::TaintKeyRequest { key_id: t.into() })
                .await
                .map(nothing),
            Rpc::RevokeKey => c
                .revoke_key(pb::RevokeKeyRequest {
                    key_id: t.into(),
                    force: false,
                })
                .await
                .map(nothing),
            Rpc::CreateTenant => c
                .create_tenant(pb::CreateTenantRequest {
                    tenant: Some(new_tenant(t)),
                })
                .await
                .map(nothing),
            Rpc::GetTenant => c
                .get_tenant(pb::GetTenantRequest { name: t.into() })
                .await
                .map(nothing),
            Rpc::ListTenants => {
                let resp = c
                    .list_tenants(pb::ListTenantsRequest {})
                    .await?
                    .into_inner();
                Ok(resp.tenants.into_iter().map(|t| t.name).collect())
            }
            Rpc::DeleteTenant => c
                .delete_tenant(pb::DeleteTenantRequest { name: t.into() })
                .await
                .map(nothing),
            Rpc::Bind => c
                .bind(pb::BindRequest {
                    binding: Some(binding_of(t, col)),
                })
                .await
                .map(nothing),
            Rpc::Unbind => c
                .unbind(pb::UnbindRequest {
                    binding: Some(binding_of(t, col)),
                })
                .await
                .map(nothing),
            Rpc::ListBindingsOfTenant | Rpc::ListBindings => {
                let tenant = if self == Rpc::ListBindings {
                    String::new()
                } else {
                    t.into()
                };
                let resp = c
                    .list_bindings(pb::ListBindingsRequest {
                        tenant,
                        subject: String::new(),
                    })
                    .await?
                    .into_inner();
                Ok(resp.bindings.into_iter().map(|b| b.subject).collect())
            }
            Rpc::WhoAmI => c.who_am_i(pb::WhoAmIRequest {}).await.map(nothing),
            Rpc::ListAuditOfTenant | Rpc::ListAudit => {
                let tenant = if self == Rpc::ListAudit {
                    String::new()
                } else {
                    t.into()
                };
                let resp = c
                    .list_audit(pb::ListAuditRequest {
                        page_size: 1000,
                        tenant,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Ok(resp.records.into_iter().map(|r| r.tenant).collect())
            }
            Rpc::VerifyAudit => {
                let r = c
                    .verify_audit(pb::VerifyAuditRequest {})
                    .await?
                    .into_inner();
                if r.ok {
                    Ok(Vec::new())
                } else {
                    Err(Status::data_loss(format!(
                        "the chain is broken at {}: {}",
                        r.first_bad_seq, r.problem
                    )))
                }
            }
        }
    }
}

/// A call that lists nothing.
fn nothing<T>(_: T) -> Vec<String> {
    Vec::new()
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|&x| x.to_owned()).collect()
}

fn agent(id: &str) -> pb::AgentRequest {
    pb::AgentRequest {
        spiffe_id: id.into(),
    }
}

/// The binding of `subject` that [`new_binding`] makes for `col`.
fn binding_of(subject: &str, col: Col) -> pb::RoleBinding {
    pb::RoleBinding {
        subject: subject.into(),
        ..new_binding(0, col)
    }
}
