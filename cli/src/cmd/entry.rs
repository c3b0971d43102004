//! `meshid entry`: registration entries on the CA (admin API).

use anyhow::Context as _;
use meshid_proto::ca::{self as pb, entry_result};
use serde_json::json;

use crate::admin_client::{self, Conn, Output, format_secs, format_time};

/// Arguments of `meshid entry`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Registers a workload: it gets --spiffe-id when it runs under
    /// --parent-id and shows every --selector.
    ///
    /// Example: meshid entry create --spiffe-id spiffe://example.org/web
    /// --parent-id spiffe://example.org/meshid/agent/join_token/<id>
    /// --selector unix:uid:1000
    Create(CreateArgs),
    /// Changes an entry; fields you do not give stay as they are. List flags
    /// (--selector, --dns-name, --federates-with) replace the whole list.
    Update(UpdateArgs),
    /// Shows one entry.
    Show(IdArgs),
    /// Lists entries (all pages), optionally filtered.
    List(ListArgs),
    /// Deletes an entry; workloads stop getting its SVID.
    Delete(IdArgs),
}

/// `meshid entry create`.
#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The SPIFFE ID issued to matching workloads.
    #[arg(long, value_name = "ID")]
    spiffe_id: String,
    /// The agent (or node alias) SPIFFE ID allowed to serve this entry.
    #[arg(long, value_name = "ID")]
    parent_id: String,
    /// A `type:value` selector the workload must show (repeatable; all must
    /// match), e.g. unix:uid:1000 or k8s:ns:payments.
    #[arg(long = "selector", value_name = "TYPE:VALUE", required = true)]
    selectors: Vec<String>,
    /// X.509-SVID lifetime, e.g. 1h (default: the CA's).
    #[arg(long, value_parser = meshid_runtime::duration::parse, value_name = "DURATION")]
    x509_ttl: Option<std::time::Duration>,
    /// JWT-SVID lifetime, e.g. 5m (default: the CA's).
    #[arg(long, value_parser = meshid_runtime::duration::parse, value_name = "DURATION")]
    jwt_ttl: Option<std::time::Duration>,
    /// An extra DNS SAN for the X.509-SVID (repeatable).
    #[arg(long = "dns-name", value_name = "NAME")]
    dns_names: Vec<String>,
    /// A foreign trust domain whose bundle the workload also gets (repeatable).
    #[arg(long = "federates-with", value_name = "TRUST_DOMAIN")]
    federates_with: Vec<String>,
    /// The identity may call the CA's admin API.
    #[arg(long)]
    admin: bool,
    /// The identity may mint SVIDs for a downstream CA.
    #[arg(long)]
    downstream: bool,
    /// A free-form hint for workloads that get several SVIDs.
    #[arg(long)]
    hint: Option<String>,
    /// Who manages the entry, e.g. k8s/<cluster> for a Kubernetes
    /// controller (which lists and deletes only its own); default: none,
    /// an operator's entry.
    #[arg(long, value_name = "OWNER")]
    owner: Option<String>,
    /// The tenant the entry belongs to (`meshid tenant list`); the CA
    /// derives it from the SPIFFE ID, so this only makes sure it is that
    /// one. Default: whichever tenant's prefixes hold the SPIFFE ID, or
    /// none (a platform entry).
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

/// `meshid entry update`.
#[derive(Debug, clap::Args)]
struct UpdateArgs {
    /// The entry ID (see `meshid entry list`).
    id: String,
    /// New SPIFFE ID.
    #[arg(long, value_name = "ID")]
    spiffe_id: Option<String>,
    /// New parent ID.
    #[arg(long, value_name = "ID")]
    parent_id: Option<String>,
    /// New selector set (repeatable; replaces all selectors).
    #[arg(long = "selector", value_name = "TYPE:VALUE")]
    selectors: Vec<String>,
    /// New X.509-SVID lifetime (0s = the CA's default).
    #[arg(long, value_parser = meshid_runtime::duration::parse, value_name = "DURATION")]
    x509_ttl: Option<std::time::Duration>,
    /// New JWT-SVID lifetime (0s = the CA's default).
    #[arg(long, value_parser = meshid_runtime::duration::parse, value_name = "DURATION")]
    jwt_ttl: Option<std::time::Duration>,
    /// New DNS names (repeatable; replaces all).
    #[arg(long = "dns-name", value_name = "NAME")]
    dns_names: Vec<String>,
    /// Removes every DNS name.
    #[arg(long, conflicts_with = "dns_names")]
    clear_dns_names: bool,
    /// New federated trust domains (repeatable; replaces all).
    #[arg(long = "federates-with", value_name = "TRUST_DOMAIN")]
    federates_with: Vec<String>,
    /// Removes every federated trust domain.
    #[arg(long, conflicts_with = "federates_with")]
    clear_federates_with: bool,
    /// Admin flag.
    #[arg(long, value_name = "true|false")]
    admin: Option<bool>,
    /// Downstream flag.
    #[arg(long, value_name = "true|false")]
    downstream: Option<bool>,
    /// New owner ("" makes it an operator's entry; a controller that owned
    /// it no longer touches it).
    #[arg(long, value_name = "OWNER")]
    owner: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

/// Commands naming one entry.
#[derive(Debug, clap::Args)]
struct IdArgs {
    /// The entry ID (see `meshid entry list`).
    id: String,
    #[command(flatten)]
    conn: Conn,
}

/// `meshid entry list`.
#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only entries served by this parent ID.
    #[arg(long, value_name = "ID")]
    parent_id: Option<String>,
    /// Only entries issuing this SPIFFE ID.
    #[arg(long, value_name = "ID")]
    spiffe_id: Option<String>,
    /// Only entries carrying this selector.
    #[arg(long, value_name = "TYPE:VALUE")]
    selector: Option<String>,
    /// Only entries with exactly this owner, e.g. k8s/<cluster>.
    #[arg(long, value_name = "OWNER")]
    owner: Option<String>,
    /// Only entries of this tenant (default: every tenant you may view).
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

/// Runs `meshid entry`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Create(a) => create(a).await,
        Command::Update(a) => update(a).await,
        Command::Show(a) => show(a).await,
        Command::List(a) => list(a).await,
        Command::Delete(a) => delete(a).await,
    }
}

/// Splits `type:value` at the first colon.
pub fn selector(s: &str) -> anyhow::Result<pb::Selector> {
    let (kind, value) = s
        .split_once(':')
        .with_context(|| format!("selector {s:?} must look like type:value, e.g. unix:uid:1000"))?;
    Ok(pb::Selector {
        r#type: kind.to_owned(),
        value: value.to_owned(),
    })
}

fn selectors(list: &[String]) -> anyhow::Result<Vec<pb::Selector>> {
    list.iter().map(|s| selector(s)).collect()
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let entry = pb::Entry {
        spiffe_id: a.spiffe_id,
        parent_id: a.parent_id,
        selectors: selectors(&a.selectors)?,
        x509_svid_ttl_seconds: a
            .x509_ttl
            .map(admin_client::seconds)
            .transpose()?
            .unwrap_or(0),
        jwt_svid_ttl_seconds: a
            .jwt_ttl
            .map(admin_client::seconds)
            .transpose()?
            .unwrap_or(0),
        dns_names: a.dns_names,
        admin: a.admin,
        federates_with: a.federates_with,
        downstream: a.downstream,
        hint: a.hint.unwrap_or_default(),
        owner: a.owner.unwrap_or_default(),
        tenant: a.tenant.unwrap_or_default(),
        ..Default::default()
    };
    let mut client = a.conn.connect().await?;
    let resp = client
        .create_entries(pb::CreateEntriesRequest {
            entries: vec![entry],
        })
        .await
        .map_err(|s| admin_client::refused("creating the entry failed", s))?
        .into_inner();
    match resp.results.into_iter().next().and_then(|r| r.result) {
        Some(entry_result::Result::Entry(e)) => print_entry(&e, a.conn.output),
        Some(entry_result::Result::Error(e)) => Err(anyhow::anyhow!(
            "the CA refused the entry: {} ({:?})",
            e.message,
            tonic::Code::from_i32(e.code)
        )),
        None => anyhow::bail!("the CA returned no result for the entry; check its logs"),
    }
}

async fn update(a: UpdateArgs) -> anyhow::Result<()> {
    let mut client = a.conn.connect().await?;
    let mut e = client
        .get_entry(pb::GetEntryRequest { id: a.id.clone() })
        .await
        .map_err(|s| admin_client::refused("reading the entry failed", s))?
        .into_inner();
    if let Some(v) = a.spiffe_id {
        e.spiffe_id = v;
    }
    if let Some(v) = a.parent_id {
        e.parent_id = v;
    }
    if !a.selectors.is_empty() {
        e.selectors = selectors(&a.selectors)?;
    }
    if let Some(v) = a.x509_ttl {
        e.x509_svid_ttl_seconds = admin_client::seconds(v)?;
    }
    if let Some(v) = a.jwt_ttl {
        e.jwt_svid_ttl_seconds = admin_client::seconds(v)?;
    }
    if !a.dns_names.is_empty() || a.clear_dns_names {
        e.dns_names = a.dns_names;
    }
    if !a.federates_with.is_empty() || a.clear_federates_with {
        e.federates_with = a.federates_with;
    }
    if let Some(v) = a.admin {
        e.admin = v;
    }
    if let Some(v) = a.downstream {
        e.downstream = v;
    }
    if let Some(v) = a.owner {
        e.owner = v;
    }
    // `e.revision` is what we read: the CA refuses the update if someone
    // changed the entry in between.
    let updated = client
        .update_entry(pb::UpdateEntryRequest { entry: Some(e) })
        .await
        .map_err(|s| admin_client::refused("updating the entry failed", s))?
        .into_inner();
    print_entry(&updated, a.conn.output)
}

async fn show(a: IdArgs) -> anyhow::Result<()> {
    let mut client = a.conn.connect().await?;
    let e = client
        .get_entry(pb::GetEntryRequest { id: a.id })
        .await
        .map_err(|s| admin_client::refused("reading the entry failed", s))?
        .into_inner();
    print_entry(&e, a.conn.output)
}

async fn delete(a: IdArgs) -> anyhow::Result<()> {
    let mut client = a.conn.connect().await?;
    let e = client
        .delete_entry(pb::DeleteEntryRequest { id: a.id })
        .await
        .map_err(|s| admin_client::refused("deleting the entry failed", s))?
        .into_inner();
    match a.conn.output {
        Output::Json => admin_client::print_json(&entry_json(&e)),
        Output::Text => {
            println!("Deleted entry {} ({})", e.id, e.spiffe_id);
            Ok(())
        }
    }
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let by_selector = a.selector.as_deref().map(selector).transpose()?;
    let mut client = a.conn.connect().await?;
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let resp = client
            .list_entries(pb::ListEntriesRequest {
                page_token,
                page_size: 0,
                by_parent_id: a.parent_id.clone().unwrap_or_default(),
                by_spiffe_id: a.spiffe_id.clone().unwrap_or_default(),
                by_selector: by_selector.clone(),
                by_owner: a.owner.clone().unwrap_or_default(),
                by_tenant: a.tenant.clone().unwrap_or_default(),
            })
            .await
            .map_err(|s| admin_client::refused("listing entries failed", s))?
            .into_inner();
        all.extend(resp.entries);
        if resp.next_page_token.is_empty() {
            break;
        }
        page_token = resp.next_page_token;
    }
    match a.conn.output {
        Output::Json => admin_client::print_json(&json!({
            "entries": all.iter().map(entry_json).collect::<Vec<_>>(),
        })),
        Output::Text => {
            println!(
                "Found {} entr{}",
                all.len(),
                if all.len() == 1 { "y" } else { "ies" }
            );
            for e in &all {
                println!();
                print_entry_text(e);
            }
            Ok(())
        }
    }
}

fn selector_text(s: &pb::Selector) -> String {
    format!("{}:{}", s.r#type, s.value)
}

/// An entry as a JSON object (stable field names for scripts).
pub fn entry_json(e: &pb::Entry) -> serde_json::Value {
    json!({
        "id": e.id,
        "spiffe_id": e.spiffe_id,
        "parent_id": e.parent_id,
        "selectors": e.selectors.iter().map(selector_text).collect::<Vec<_>>(),
        "x509_svid_ttl_seconds": e.x509_svid_ttl_seconds,
        "jwt_svid_ttl_seconds": e.jwt_svid_ttl_seconds,
        "dns_names": e.dns_names,
        "federates_with": e.federates_with,
        "admin": e.admin,
        "downstream": e.downstream,
        "revision": e.revision,
        "created_at": e.created_at,
        "owner": e.owner,
        "tenant": e.tenant,
    })
}

fn print_entry(e: &pb::Entry, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => admin_client::print_json(&entry_json(e)),
        Output::Text => {
            print_entry_text(e);
            Ok(())
        }
    }
}

fn print_entry_text(e: &pb::Entry) {
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    println!("Entry ID       : {}", e.id);
    println!("Tenant         : {}", tenant_text(&e.tenant));
    println!("SPIFFE ID      : {}", e.spiffe_id);
    println!("Parent ID      : {}", e.parent_id);
    for s in &e.selectors {
        println!("Selector       : {}", selector_text(s));
    }
    println!(
        "X509-SVID TTL  : {}",
        format_secs(u64::from(e.x509_svid_ttl_seconds))
    );
    println!(
        "JWT-SVID TTL   : {}",
        format_secs(u64::from(e.jwt_svid_ttl_seconds))
    );
    println!("DNS names      : {}", list(&e.dns_names));
    println!("Federates with : {}", list(&e.federates_with));
    println!("Admin          : {}", e.admin);
    println!("Downstream     : {}", e.downstream);
    println!("Revision       : {}", e.revision);
    println!("Created        : {}", format_time(e.created_at));
    println!(
        "Owner          : {}",
        if e.owner.is_empty() { "-" } else { &e.owner }
    );
}

/// A tenant name for text output: `-` for none (the platform's).
pub fn tenant_text(tenant: &str) -> &str {
    if tenant.is_empty() { "-" } else { tenant }
}
