//! `meshid ca`: run the certificate authority (`serve`), check its config
//! (`validate`), describe it (`show`), make its intermediate for an
//! enterprise root (`csr`, then `import`), or rotate its keys (`rotation`).

mod csr;
mod import;
mod rotation;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use meshid_ca::config::CaConfig;
use meshid_identity::TrustDomain;

use crate::admin_client::{self, Output};

/// Arguments of `meshid ca`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Runs the CA: node API (TLS), admin API (Unix socket), ops endpoint.
    Serve(ServeArgs),
    /// Checks a config (file, flags and environment, as `serve` would read
    /// them) without starting anything: settings, typed fields, value
    /// ranges, the data directory and the upstream chain and key. Prints
    /// "config OK" and a summary, or the problem and exits non-zero.
    Validate(ServeArgs),
    /// Shows the CA's signing chain, expiry and kind.
    Show(ShowArgs),
    /// Makes a key and a CSR for an intermediate CA that an enterprise root
    /// signs (basicConstraints CA:TRUE with pathLen, keyUsage keyCertSign
    /// and cRLSign, the trust domain's URI SAN).
    Csr(csr::Args),
    /// Checks a signed intermediate, its chain, root and key exactly as the
    /// CA does at start-up, then writes them into the upstream directory in
    /// Istio's plug-in layout (ca-cert.pem, ca-key.pem, cert-chain.pem,
    /// root-cert.pem). Writes nothing when a check fails.
    Import(import::Args),
    /// Shows the CA's key slots (X.509 CAs and JWT keys of every replica)
    /// and takes manual rotation steps: prepare, activate, taint, revoke.
    Rotation(rotation::Args),
}

/// Flags override the config file.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "MESHID_CA_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Trust domain, e.g. example.org.
    #[arg(long, env = "MESHID_TRUST_DOMAIN")]
    trust_domain: Option<TrustDomain>,
    /// Data directory (keys, root certificate, SQLite store, admin socket).
    #[arg(long, env = "MESHID_CA_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Store URL (sqlite:///path.db or postgres://…).
    #[arg(long, env = "MESHID_CA_STORE", value_name = "URL")]
    store: Option<String>,
    /// Node API address (TLS).
    #[arg(long, env = "MESHID_CA_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Admin API Unix socket path.
    #[arg(long, env = "MESHID_ADMIN_SOCKET", value_name = "PATH")]
    admin_socket: Option<PathBuf>,
    /// Ops endpoint address (/healthz, /readyz, /metrics).
    #[arg(long, env = "MESHID_CA_OPS_LISTEN", value_name = "ADDR")]
    ops_listen: Option<SocketAddr>,
    #[command(flatten)]
    backend: super::backend::BackendFlag,
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// Admin socket of a running CA.
    #[arg(long, env = "MESHID_ADMIN_SOCKET", default_value = admin_client::DEFAULT_ADMIN_SOCKET)]
    admin_socket: PathBuf,
    /// Read the root certificate from this data directory instead of asking
    /// a running CA.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// Runs `meshid ca`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Serve(a) => serve(a).await,
        Command::Validate(a) => validate::run(load(a)?),
        Command::Show(a) => show(a).await,
        Command::Csr(a) => csr::run(a),
        Command::Import(a) => import::run(a),
        Command::Rotation(a) => rotation::run(a).await,
    }
}

/// The config file (if any) with the flags and environment applied.
fn load(a: ServeArgs) -> anyhow::Result<CaConfig> {
    let mut cfg = match &a.config {
        Some(path) => CaConfig::from_file(path)?,
        None => CaConfig::default(),
    };
    if a.trust_domain.is_some() {
        cfg.trust_domain = a.trust_domain;
    }
    if a.data_dir.is_some() {
        cfg.data_dir = a.data_dir;
    }
    if let Some(url) = a.store {
        cfg.store = Some(url.parse()?);
    }
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if a.admin_socket.is_some() {
        cfg.admin_socket = a.admin_socket;
    }
    if let Some(l) = a.ops_listen {
        cfg.ops_listen = l;
    }
    if let Some(b) = a.backend.get() {
        cfg.tls_backend = b;
    }
    Ok(cfg)
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let cfg = load(a)?.validate()?;
    let backend = super::backend::describe(cfg.raw.tls_backend, cfg.raw.fips);
    // One CA per trust domain: the top level's and each [[trust_domains]].
    let cas = meshid_ca::server::multi::MultiCaServer::start(cfg).await?;
    for server in &cas.servers {
        let authority = server.authority.load();
        println!("meshid CA for {}", authority.trust_domain());
        println!("  node API (TLS)  {}", server.node_addr);
        println!("  TLS backend     {backend}");
        println!("  admin API       {}", server.admin_socket.display());
        println!(
            "  ops (HTTP)      http://{}/healthz /readyz /metrics",
            server.ops_addr
        );
        println!(
            "  authority       {} (expires {})",
            authority.kind(),
            admin_client::format_time(unix(authority.not_after()))
        );
    }
    crate::signal::shutdown().await;
    tracing::info!("signal received; finishing in-flight requests");
    cas.shutdown().await?;
    Ok(())
}

fn unix(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

struct Shown {
    trust_domain: String,
    kind: String,
    expires_at: i64,
    chain: Vec<Vec<u8>>,
}

async fn show(a: ShowArgs) -> anyhow::Result<()> {
    let shown = match &a.data_dir {
        Some(dir) => from_data_dir(dir)?,
        None => {
            let mut client = admin_client::connect(&a.admin_socket).await?;
            let auth = client
                .get_authority(meshid_proto::ca::GetAuthorityRequest {})
                .await
                .map_err(|s| admin_client::refused("get authority", s))?
                .into_inner();
            Shown {
                trust_domain: auth.trust_domain,
                kind: auth.kind,
                expires_at: auth.expires_at,
                chain: auth.cert_chain,
            }
        }
    };
    let subjects: Vec<String> = shown.chain.iter().map(|c| describe(c)).collect();
    match a.output {
        Output::Json => admin_client::print_json(&serde_json::json!({
            "trust_domain": shown.trust_domain,
            "kind": shown.kind,
            "expires_at": admin_client::format_time(shown.expires_at),
            "chain": subjects,
            "chain_pem": meshid_identity::x509::to_pem(
                &shown.chain.iter().map(|c| rustls_pki_types::CertificateDer::from(c.as_slice())).collect::<Vec<_>>()
            ),
        })),
        Output::Text => {
            println!("trust domain  {}", shown.trust_domain);
            println!("kind          {}", shown.kind);
            println!(
                "expires       {}",
                admin_client::format_time(shown.expires_at)
            );
            for (i, s) in subjects.iter().enumerate() {
                println!("chain[{i}]      {s}");
            }
            Ok(())
        }
    }
}

/// Reads the self-signed root from a data directory (CA need not run).
fn from_data_dir(dir: &std::path::Path) -> anyhow::Result<Shown> {
    let path = dir.join("ca.crt.pem");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}; is this a meshid CA data directory?",
            path.display()
        )
    })?;
    let certs = meshid_identity::x509::pem_certs(&text)?;
    let first = certs.first().context("no certificate in ca.crt.pem")?;
    let td = meshid_identity::x509::spiffe_id_of(first)
        .map(|id| id.trust_domain().to_string())
        .unwrap_or_default();
    let expires = meshid_identity::x509::not_after(first)
        .map(unix)
        .unwrap_or(0);
    Ok(Shown {
        trust_domain: td,
        kind: "self-signed (from data dir)".into(),
        expires_at: expires,
        chain: certs.iter().map(|c| c.to_vec()).collect(),
    })
}

/// `<URI SAN> (expires <time>)` of one DER certificate.
fn describe(der: &[u8]) -> String {
    let id = meshid_identity::x509::spiffe_id_of(der)
        .map(|i| i.to_string())
        .unwrap_or_else(|_| "<no SPIFFE ID>".into());
    match meshid_identity::x509::not_after(der) {
        Ok(t) => format!("{id} (expires {})", admin_client::format_time(unix(t))),
        Err(_) => "<unreadable certificate>".into(),
    }
}
