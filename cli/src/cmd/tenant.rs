//! `meshid tenant`: tenants, the named scopes of SPIFFE ID prefixes that
//! entries, join tokens and agents belong to (admin API).

use meshid_proto::ca as pb;
use serde_json::json;

use crate::admin_client::{self, Conn, Output, cell_list, format_time};

/// Arguments of `meshid tenant`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Creates a tenant (cluster-admin): its entries get SPIFFE IDs at or
    /// below one of its --prefix, never inside another tenant's.
    ///
    /// Example: meshid tenant create payments --prefix
    /// spiffe://example.org/ns/payments --k8s-namespace payments
    Create(CreateArgs),
    /// Lists the tenants you may view.
    List(ListArgs),
    /// Shows one tenant.
    Show(NameArgs),
    /// Deletes a tenant (cluster-admin); refused while entries, agents or
    /// unused join tokens of it exist.
    Delete(NameArgs),
}

/// `meshid tenant create`.
#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The tenant's name: 1-63 of a-z, 0-9 and `-`, starting with a letter.
    name: String,
    /// A SPIFFE ID path prefix of the tenant, e.g.
    /// spiffe://example.org/ns/payments (repeatable; at least one).
    #[arg(long = "prefix", value_name = "SPIFFE_ID", required = true)]
    prefixes: Vec<String>,
    /// A Kubernetes namespace of the tenant (repeatable).
    #[arg(long = "k8s-namespace", value_name = "NAMESPACE")]
    k8s_namespaces: Vec<String>,
    /// A parent ID (agent or node alias), or a prefix of them, that the
    /// tenant's entries may name besides its own agents (repeatable).
    #[arg(long = "allowed-parent", value_name = "ID")]
    allowed_parents: Vec<String>,
    /// A trust domain the tenant's entries may federate with (repeatable).
    #[arg(long = "federates-with", value_name = "TRUST_DOMAIN")]
    federates_with: Vec<String>,
    #[command(flatten)]
    conn: Conn,
}

/// `meshid tenant list`.
#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    conn: Conn,
}

/// Commands naming one tenant.
#[derive(Debug, clap::Args)]
struct NameArgs {
    /// The tenant's name (see `meshid tenant list`).
    name: String,
    #[command(flatten)]
    conn: Conn,
}

/// Runs `meshid tenant`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Create(a) => create(a).await,
        Command::List(a) => list(a).await,
        Command::Show(a) => show(a).await,
        Command::Delete(a) => delete(a).await,
    }
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let tenant = pb::Tenant {
        name: a.name,
        spiffe_id_prefixes: a.prefixes,
        k8s_namespaces: a.k8s_namespaces,
        allowed_parents: a.allowed_parents,
        federates_with: a.federates_with,
        created_at: 0,
    };
    let mut client = a.conn.connect().await?;
    let t = client
        .create_tenant(pb::CreateTenantRequest {
            tenant: Some(tenant),
        })
        .await
        .map_err(|s| admin_client::refused("creating the tenant failed", s))?
        .into_inner();
    print(&t, a.conn.output, Some("Created tenant"))
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let mut client = a.conn.connect().await?;
    let tenants = client
        .list_tenants(pb::ListTenantsRequest {})
        .await
        .map_err(|s| admin_client::refused("listing tenants failed", s))?
        .into_inner()
        .tenants;
    match a.conn.output {
        Output::Json => admin_client::print_json(&json!({
            "tenants": tenants.iter().map(tenant_json).collect::<Vec<_>>(),
        })),
        Output::Text => {
            print!("{}", table(&tenants));
            Ok(())
        }
    }
}

async fn show(a: NameArgs) -> anyhow::Result<()> {
    let mut client = a.conn.connect().await?;
    let t = client
        .get_tenant(pb::GetTenantRequest { name: a.name })
        .await
        .map_err(|s| admin_client::refused("reading the tenant failed", s))?
        .into_inner();
    print(&t, a.conn.output, None)
}

async fn delete(a: NameArgs) -> anyhow::Result<()> {
    let mut client = a.conn.connect().await?;
    let t = client
        .delete_tenant(pb::DeleteTenantRequest { name: a.name })
        .await
        .map_err(|s| admin_client::refused("deleting the tenant failed", s))?
        .into_inner();
    print(&t, a.conn.output, Some("Deleted tenant"))
}

/// A tenant as a JSON object (stable field names for scripts).
fn tenant_json(t: &pb::Tenant) -> serde_json::Value {
    json!({
        "name": t.name,
        "spiffe_id_prefixes": t.spiffe_id_prefixes,
        "k8s_namespaces": t.k8s_namespaces,
        "allowed_parents": t.allowed_parents,
        "federates_with": t.federates_with,
        "created_at": t.created_at,
    })
}

fn print(t: &pb::Tenant, output: Output, done: Option<&str>) -> anyhow::Result<()> {
    match output {
        Output::Json => admin_client::print_json(&tenant_json(t)),
        Output::Text => {
            if let Some(done) = done {
                println!("{done} {}", t.name);
            }
            println!("Name           : {}", t.name);
            for p in &t.spiffe_id_prefixes {
                println!("Prefix         : {p}");
            }
            println!("K8s namespaces : {}", cell_list(&t.k8s_namespaces));
            for p in &t.allowed_parents {
                println!("Allowed parent : {p}");
            }
            println!("Federates with : {}", cell_list(&t.federates_with));
            println!("Created        : {}", format_time(t.created_at));
            Ok(())
        }
    }
}

/// The tenants as a text table.
fn table(tenants: &[pb::Tenant]) -> String {
    let rows: Vec<[String; 4]> = tenants
        .iter()
        .map(|t| {
            [
                t.name.clone(),
                cell_list(&t.spiffe_id_prefixes),
                cell_list(&t.k8s_namespaces),
                format_time(t.created_at),
            ]
        })
        .collect();
    admin_client::table(
        ["NAME", "PREFIXES", "K8S NAMESPACES", "CREATED"],
        &rows,
        "(no tenants you may view)",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_row_per_tenant() {
        let t = pb::Tenant {
            name: "payments".into(),
            spiffe_id_prefixes: vec!["spiffe://example.org/ns/payments".into()],
            created_at: 0,
            ..Default::default()
        };
        let out = table(&[t]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{out}");
        assert!(
            lines[1].starts_with("payments  spiffe://example.org/ns/payments  -"),
            "{out}"
        );
        assert_eq!(tenant_json(&pb::Tenant::default())["name"], "");
    }
}
