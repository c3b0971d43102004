//! `meshid agent list|show|evict|ban`: agent administration on the CA.

use meshid_proto::ca as pb;
use serde_json::json;

use crate::admin_client::{self, Conn, Output, format_time};

/// Arguments of `meshid agent list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only agents of this tenant (`-` for platform agents, which belong
    /// to none); the CA already lists only those you may view.
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

/// Arguments naming one agent.
#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// The agent's SPIFFE ID (see `meshid agent list`).
    spiffe_id: String,
    #[command(flatten)]
    conn: Conn,
}

/// `meshid agent list`.
pub async fn list(a: ListArgs) -> anyhow::Result<()> {
    let mut client = a.conn.connect().await?;
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let resp = client
            .list_agents(pb::ListAgentsRequest {
                page_token,
                page_size: 0,
            })
            .await
            .map_err(|s| admin_client::refused("listing agents failed", s))?
            .into_inner();
        all.extend(resp.agents.into_iter().filter(|agent| {
            a.tenant
                .as_deref()
                .is_none_or(|t| agent.tenant == t || (t == "-" && agent.tenant.is_empty()))
        }));
        if resp.next_page_token.is_empty() {
            break;
        }
        page_token = resp.next_page_token;
    }
    match a.conn.output {
        Output::Json => admin_client::print_json(&json!({
            "agents": all.iter().map(agent_json).collect::<Vec<_>>(),
        })),
        Output::Text => {
            println!(
                "Found {} attested agent{}",
                all.len(),
                if all.len() == 1 { "" } else { "s" }
            );
            for agent in &all {
                println!();
                print_text(agent);
            }
            Ok(())
        }
    }
}

/// `meshid agent show`.
pub async fn show(a: IdArgs) -> anyhow::Result<()> {
    let mut client = a.conn.connect().await?;
    let agent = client
        .get_agent(request(&a))
        .await
        .map_err(|s| admin_client::refused("reading the agent failed", s))?
        .into_inner();
    print(&agent, a.conn.output, None)
}

/// `meshid agent evict`.
pub async fn evict(a: IdArgs) -> anyhow::Result<()> {
    let mut client = a.conn.connect().await?;
    let agent = client
        .evict_agent(request(&a))
        .await
        .map_err(|s| admin_client::refused("evicting the agent failed", s))?
        .into_inner();
    print(
        &agent,
        a.conn.output,
        Some("Evicted: the agent must attest again before it gets new SVIDs"),
    )
}

/// `meshid agent ban`.
pub async fn ban(a: IdArgs) -> anyhow::Result<()> {
    let mut client = a.conn.connect().await?;
    let agent = client
        .ban_agent(request(&a))
        .await
        .map_err(|s| admin_client::refused("banning the agent failed", s))?
        .into_inner();
    print(
        &agent,
        a.conn.output,
        Some(
            "Banned: the agent can neither renew nor attest again; `meshid agent evict` lifts the ban",
        ),
    )
}

fn request(a: &IdArgs) -> pb::AgentRequest {
    pb::AgentRequest {
        spiffe_id: a.spiffe_id.clone(),
    }
}

fn agent_json(a: &pb::Agent) -> serde_json::Value {
    json!({
        "spiffe_id": a.spiffe_id,
        "attestation_type": a.attestation_type,
        "serial": a.serial,
        "expires_at": a.expires_at,
        "banned": a.banned,
        "selectors": a.selectors.iter().map(|s| format!("{}:{}", s.r#type, s.value)).collect::<Vec<_>>(),
        "created_at": a.created_at,
        "tenant": a.tenant,
    })
}

fn print(a: &pb::Agent, output: Output, note: Option<&str>) -> anyhow::Result<()> {
    match output {
        Output::Json => admin_client::print_json(&agent_json(a)),
        Output::Text => {
            if let Some(note) = note {
                println!("{note}");
            }
            print_text(a);
            Ok(())
        }
    }
}

fn print_text(a: &pb::Agent) {
    println!("Agent ID         : {}", a.spiffe_id);
    println!(
        "Tenant           : {}",
        crate::cmd::entry::tenant_text(&a.tenant)
    );
    println!("Attestation type : {}", a.attestation_type);
    println!("SVID serial      : {}", a.serial);
    println!("SVID expires     : {}", format_time(a.expires_at));
    println!("Banned           : {}", a.banned);
    for s in &a.selectors {
        println!("Selector         : {}:{}", s.r#type, s.value);
    }
    println!("Attested         : {}", format_time(a.created_at));
}
