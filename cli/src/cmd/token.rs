//! `meshid token`: join tokens for node attestation (admin API).

use meshid_proto::ca as pb;
use serde_json::json;

use crate::admin_client::{self, Conn, Output, format_time};

/// Arguments of `meshid token`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Creates (alias: `create`) a one-time join token for a new node and prints it with the
    /// agent SPIFFE ID it will produce. The token is shown once only.
    ///
    /// Example: meshid token generate --ttl 10m --spiffe-id spiffe://example.org/node/rack1
    #[command(visible_alias = "create")]
    Generate(GenerateArgs),
}

/// `meshid token generate`.
#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// How long the token stays usable, e.g. 90s, 10m, 1h (default: the
    /// CA's, 10 minutes).
    #[arg(long, value_parser = meshid_runtime::duration::parse, value_name = "DURATION")]
    ttl: Option<std::time::Duration>,
    /// A node alias SPIFFE ID the agent also gets (entries may use it as
    /// their parent ID).
    #[arg(long, value_name = "ID")]
    spiffe_id: Option<String>,
    /// The tenant the agent attested with this token belongs to: its
    /// entries may name the agent as their parent (default: none, a
    /// platform agent; needs the admin role on the tenant).
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

/// Runs `meshid token`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Generate(a) => generate(a).await,
    }
}

async fn generate(a: GenerateArgs) -> anyhow::Result<()> {
    let ttl_seconds = match a.ttl {
        Some(d) if d.is_zero() => anyhow::bail!("--ttl must be longer than 0s, e.g. 10m"),
        Some(d) => admin_client::seconds(d)?,
        None => 0,
    };
    let mut client = a.conn.connect().await?;
    let t = client
        .create_join_token(pb::CreateJoinTokenRequest {
            ttl_seconds,
            spiffe_id: a.spiffe_id.unwrap_or_default(),
            tenant: a.tenant.unwrap_or_default(),
        })
        .await
        .map_err(|s| admin_client::refused("creating the join token failed", s))?
        .into_inner();
    match a.conn.output {
        Output::Json => admin_client::print_json(&json!({
            "token": t.token,
            "id": t.id,
            "expires_at": t.expires_at,
            "spiffe_id": t.agent_spiffe_id,
            "tenant": t.tenant,
        })),
        Output::Text => {
            println!("Token      : {}", t.token);
            println!("Agent ID   : {}", t.agent_spiffe_id);
            println!("Tenant     : {}", super::entry::tenant_text(&t.tenant));
            println!("Expires at : {}", format_time(t.expires_at));
            Ok(())
        }
    }
}
