//! `meshid rbac`: role bindings (subject → role on a tenant) and who the
//! CA takes the caller for (admin API).

use meshid_proto::ca as pb;
use serde_json::json;

use crate::admin_client::{self, Conn, Output, format_time};
use crate::cmd::entry::tenant_text;

/// Arguments of `meshid rbac`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Grants a role: viewer, operator or admin on one tenant (needs
    /// admin of it), or cluster-admin on everything (needs cluster-admin;
    /// no --tenant).
    ///
    /// Example: meshid rbac bind --subject uid:1001 --role operator --tenant payments
    Bind(BindingArgs),
    /// Removes a binding made with `bind` (those from the CA's config
    /// stay until the config changes).
    Unbind(BindingArgs),
    /// Lists the bindings of the tenants you administer.
    List(ListArgs),
    /// Shows who the CA takes you for (uid, gid, SPIFFE ID, Kubernetes
    /// user) and every role you hold.
    Whoami(WhoamiArgs),
}

/// The roles, weakest first; each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    /// Read the tenant's entries, agents and the tenant itself.
    Viewer,
    /// Viewer, and create, change and delete the tenant's entries.
    Operator,
    /// Operator, and join tokens, agents, bindings and the audit log of
    /// the tenant.
    Admin,
    /// Everything, every tenant and the platform (no tenant).
    ClusterAdmin,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
            Self::ClusterAdmin => "cluster-admin",
        }
    }
}

/// `meshid rbac bind|unbind`.
#[derive(Debug, clap::Args)]
struct BindingArgs {
    /// Who: uid:<n> or gid:<n> (a local user or group on the admin
    /// socket), spiffe://… (an SVID on the admin mTLS port),
    /// k8s-user:<name> or k8s-group:<name> (a Kubernetes bearer token).
    #[arg(long, value_name = "SUBJECT")]
    subject: String,
    /// The role.
    #[arg(long, value_enum)]
    role: Role,
    /// The tenant (required for every role but cluster-admin, refused for
    /// it).
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

/// `meshid rbac list`.
#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only bindings on this tenant.
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    /// Only bindings of this subject.
    #[arg(long, value_name = "SUBJECT")]
    subject: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

/// `meshid rbac whoami`.
#[derive(Debug, clap::Args)]
struct WhoamiArgs {
    #[command(flatten)]
    conn: Conn,
}

/// Runs `meshid rbac`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Bind(a) => bind(a, true).await,
        Command::Unbind(a) => bind(a, false).await,
        Command::List(a) => list(a).await,
        Command::Whoami(a) => whoami(a).await,
    }
}

/// The subject prefixes the CA recognizes.
const SUBJECT_KINDS: [&str; 5] = ["uid:", "gid:", "spiffe://", "k8s-user:", "k8s-group:"];

/// The binding the flags describe, checked for what the CA would refuse
/// anyway, with a message saying how to write it.
fn binding(a: &BindingArgs) -> anyhow::Result<pb::RoleBinding> {
    let subject = a.subject.trim();
    if !SUBJECT_KINDS
        .iter()
        .any(|k| subject.len() > k.len() && subject.starts_with(k))
    {
        anyhow::bail!(
            "--subject {subject:?} must start with one of {} followed by a value, e.g. uid:1001",
            SUBJECT_KINDS.join(", ")
        );
    }
    let tenant = match (a.role, a.tenant.as_deref()) {
        (Role::ClusterAdmin, None) => String::new(),
        (Role::ClusterAdmin, Some(t)) => anyhow::bail!(
            "cluster-admin holds on every tenant; drop --tenant {t} (or bind admin on it)"
        ),
        (role, None) => anyhow::bail!(
            "--tenant is required for role {}: it holds on one tenant (`meshid tenant list`)",
            role.as_str()
        ),
        (_, Some(t)) => t.to_owned(),
    };
    Ok(pb::RoleBinding {
        subject: subject.to_owned(),
        role: a.role.as_str().to_owned(),
        tenant,
        source: String::new(),
        created_at: 0,
    })
}

async fn bind(a: BindingArgs, add: bool) -> anyhow::Result<()> {
    let b = binding(&a)?;
    let mut client = a.conn.connect().await?;
    let done = if add {
        client
            .bind(pb::BindRequest { binding: Some(b) })
            .await
            .map_err(|s| admin_client::refused("binding the role failed", s))?
    } else {
        client
            .unbind(pb::UnbindRequest { binding: Some(b) })
            .await
            .map_err(|s| admin_client::refused("unbinding the role failed", s))?
    }
    .into_inner();
    match a.conn.output {
        Output::Json => admin_client::print_json(&binding_json(&done)),
        Output::Text => {
            println!(
                "{} {} {} on {}",
                if add { "Bound" } else { "Unbound" },
                done.subject,
                done.role,
                on(&done.tenant)
            );
            Ok(())
        }
    }
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let mut client = a.conn.connect().await?;
    let bindings = client
        .list_bindings(pb::ListBindingsRequest {
            tenant: a.tenant.unwrap_or_default(),
            subject: a.subject.unwrap_or_default(),
        })
        .await
        .map_err(|s| admin_client::refused("listing role bindings failed", s))?
        .into_inner()
        .bindings;
    match a.conn.output {
        Output::Json => admin_client::print_json(&json!({
            "bindings": bindings.iter().map(binding_json).collect::<Vec<_>>(),
        })),
        Output::Text => {
            print!("{}", table(&bindings, "(no bindings you may see)"));
            Ok(())
        }
    }
}

async fn whoami(a: WhoamiArgs) -> anyhow::Result<()> {
    let mut client = a.conn.connect().await?;
    let me = client
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .map_err(|s| admin_client::refused("asking the CA who you are failed", s))?
        .into_inner();
    match a.conn.output {
        Output::Json => admin_client::print_json(&json!({
            "subjects": me.subjects,
            "roles": me.roles.iter().map(binding_json).collect::<Vec<_>>(),
        })),
        Output::Text => {
            println!("Subjects : {}", admin_client::cell_list(&me.subjects));
            print!(
                "{}",
                table(
                    &me.roles,
                    "(no roles: ask an admin to `meshid rbac bind` you)"
                )
            );
            Ok(())
        }
    }
}

/// Where a binding holds, for text.
fn on(tenant: &str) -> String {
    if tenant.is_empty() {
        "every tenant".to_owned()
    } else {
        format!("tenant {tenant}")
    }
}

/// A binding as a JSON object (stable field names for scripts).
fn binding_json(b: &pb::RoleBinding) -> serde_json::Value {
    json!({
        "subject": b.subject,
        "role": b.role,
        "tenant": b.tenant,
        "source": b.source,
        "created_at": b.created_at,
    })
}

/// Bindings as a text table.
fn table(bindings: &[pb::RoleBinding], empty: &str) -> String {
    let rows: Vec<[String; 5]> = bindings
        .iter()
        .map(|b| {
            [
                b.subject.clone(),
                b.role.clone(),
                tenant_text(&b.tenant).to_owned(),
                b.source.clone(),
                if b.created_at == 0 {
                    "-".to_owned()
                } else {
                    format_time(b.created_at)
                },
            ]
        })
        .collect();
    admin_client::table(
        ["SUBJECT", "ROLE", "TENANT", "SOURCE", "CREATED"],
        &rows,
        empty,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(subject: &str, role: Role, tenant: Option<&str>) -> BindingArgs {
        BindingArgs {
            subject: subject.into(),
            role,
            tenant: tenant.map(str::to_owned),
            conn: Conn {
                admin_socket: "x".into(),
                token_file: None,
                output: Output::Text,
            },
        }
    }

    #[test]
    fn bindings_need_a_tenant_except_cluster_admin_and_a_known_subject() {
        let b = binding(&args("uid:1001", Role::Operator, Some("payments"))).unwrap();
        assert_eq!(
            (b.role.as_str(), b.tenant.as_str()),
            ("operator", "payments")
        );
        let b = binding(&args("spiffe://example.org/ops", Role::ClusterAdmin, None)).unwrap();
        assert_eq!((b.role.as_str(), b.tenant.as_str()), ("cluster-admin", ""));
        let e = binding(&args("uid:1", Role::Viewer, None)).unwrap_err();
        assert!(e.to_string().contains("--tenant is required"), "{e}");
        let e = binding(&args("uid:1", Role::ClusterAdmin, Some("a"))).unwrap_err();
        assert!(e.to_string().contains("drop --tenant"), "{e}");
        for bad in ["1001", "uid:", "user:alice"] {
            let e = binding(&args(bad, Role::Admin, Some("a"))).unwrap_err();
            assert!(e.to_string().contains("must start with"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_table_shows_platform_bindings_with_a_dash() {
        let b = pb::RoleBinding {
            subject: "uid:0".into(),
            role: "cluster-admin".into(),
            source: "implicit".into(),
            ..Default::default()
        };
        let out = table(&[b], "none");
        assert!(
            out.lines()
                .nth(1)
                .unwrap()
                .starts_with("uid:0    cluster-admin  -       implicit"),
            "{out}"
        );
    }
}
