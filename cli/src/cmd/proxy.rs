//! `meshid proxy`: the mTLS sidecar (`run`) and a check of its config
//! (`validate`).

mod validate;

use anyhow::Context;
use meshid_proxy::config::{AccessLogTarget, Mode, ProxyConfig};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Arguments of `meshid proxy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Runs the proxy until SIGINT/SIGTERM, then drains open connections.
    Run(RunArgs),
    /// Checks a config (file and flags, as `run` would read them) without
    /// starting anything: fields, peer IDs, value ranges, the identity
    /// files and the policy file. Prints "config OK" and a summary, or the
    /// problem and exits non-zero.
    Validate(RunArgs),
}

/// Arguments of `meshid proxy run`.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Proxy configuration file (YAML, or TOML if it ends in .toml).
    #[arg(long, env = "MESHID_PROXY_CONFIG")]
    config: PathBuf,
    /// Overrides `ops_listen` (/healthz, /readyz, /metrics).
    #[arg(long)]
    ops_listen: Option<SocketAddr>,
    /// Overrides `mode`: enforce or audit.
    #[arg(long, value_parser = ["enforce", "audit"])]
    mode: Option<String>,
    /// Overrides `access_log`: stdout, off, or a file path.
    #[arg(long)]
    access_log: Option<String>,
    /// Overrides `policy`.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Overrides `workers`: data-plane threads (1-64), like Envoy's --concurrency.
    #[arg(long)]
    workers: Option<usize>,
    #[command(flatten)]
    backend: super::backend::BackendFlag,
}

/// Runs `meshid proxy …`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Run(a) => run_proxy(a).await,
        Command::Validate(a) => validate::run(load(a)?),
    }
}

/// The config file with the flags applied, validated.
fn load(a: RunArgs) -> anyhow::Result<ProxyConfig> {
    let mut cfg = ProxyConfig::from_file(&a.config)?;
    if let Some(addr) = a.ops_listen {
        cfg.ops_listen = Some(addr);
    }
    match a.mode.as_deref() {
        Some("audit") => cfg.mode = Mode::Audit,
        Some("enforce") => cfg.mode = Mode::Enforce,
        _ => {}
    }
    if let Some(l) = a.access_log {
        cfg.access_log = match l.as_str() {
            "stdout" => AccessLogTarget::Stdout,
            "off" => AccessLogTarget::Off,
            path => AccessLogTarget::File(path.into()),
        };
    }
    if let Some(p) = a.policy {
        cfg.policy = Some(p);
    }
    if let Some(n) = a.workers {
        cfg.workers = n;
    }
    if let Some(b) = a.backend.get() {
        cfg.tls_backend = b;
    }
    cfg.validate()?;
    Ok(cfg)
}

async fn run_proxy(a: RunArgs) -> anyhow::Result<()> {
    let cfg = load(a)?;
    tracing::info!(
        "TLS backend {}, algorithms {}",
        super::backend::describe(cfg.tls_backend, cfg.fips),
        cfg.tls_options().algorithms
    );
    meshid_proxy::run(cfg, async {
        crate::signal::shutdown().await;
        tracing::info!("shutdown requested; draining");
    })
    .await
    .context("proxy failed")
}
