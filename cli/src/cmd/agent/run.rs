//! `meshid agent run`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use meshid_agent::config::{AgentConfig, JoinToken};
use meshid_identity::SpiffeId;

/// Arguments of `meshid agent run`. Flags override the config file.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML config file.
    #[arg(long, env = "MESHID_AGENT_CONFIG", value_name = "FILE")]
    config: PathBuf,
    /// CA node API address (host:port).
    #[arg(long, value_name = "HOST:PORT")]
    ca_address: Option<String>,
    /// SPIFFE ID the CA must present (default spiffe://<trust domain>/meshid/ca).
    #[arg(long, value_name = "SPIFFE_ID")]
    ca_spiffe_id: Option<SpiffeId>,
    /// PEM file with the CA roots to trust on first attestation.
    #[arg(long, value_name = "FILE")]
    trust_bundle_file: Option<PathBuf>,
    /// Join token (also read from MESHID_JOIN_TOKEN when the config has none).
    #[arg(long, value_name = "TOKEN", hide_env_values = true)]
    join_token: Option<String>,
    /// Data directory (agent key, SVID, bundle).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Workload API socket.
    #[arg(long, value_name = "PATH")]
    workload_api_socket: Option<PathBuf>,
    /// SDS socket (defaults to the Workload API socket).
    #[arg(long, value_name = "PATH")]
    sds_socket: Option<PathBuf>,
    /// Ops endpoint address (/healthz, /readyz, /metrics).
    #[arg(long, value_name = "ADDR")]
    ops_listen: Option<SocketAddr>,
    #[command(flatten)]
    backend: crate::cmd::backend::BackendFlag,
}

/// The config file with the flags and environment applied, validated.
pub fn load(args: Args) -> anyhow::Result<AgentConfig> {
    let mut config = AgentConfig::load(&args.config)?;
    if let Some(v) = args.ca_address {
        // The flag names the one CA address to use.
        config.ca_address = v;
        config.ca_addresses.clear();
    }
    if let Some(v) = args.ca_spiffe_id {
        config.ca_spiffe_id = Some(v);
    }
    if let Some(v) = args.trust_bundle_file {
        config.trust_bundle_file = Some(v);
    }
    if let Some(v) = args.join_token {
        config.join_token = Some(JoinToken::new(v));
    }
    if let Some(v) = args.data_dir {
        config.data_dir = v;
    }
    if let Some(v) = args.workload_api_socket {
        config.workload_api_socket = v;
    }
    if let Some(v) = args.sds_socket {
        config.sds_socket = Some(v);
    }
    if let Some(v) = args.ops_listen {
        config.ops_listen = Some(v);
    }
    if let Some(b) = args.backend.get() {
        config.tls_backend = b;
    }
    let config = config.with_env_token();
    config
        .validate()
        .with_context(|| format!("in {}", args.config.display()))?;
    Ok(config)
}

/// Runs the agent until SIGINT/SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = load(args)?;
    tracing::info!(
        "TLS backend {}",
        crate::cmd::backend::describe(config.tls_backend, config.fips)
    );
    meshid_agent::run::run(config, async {
        crate::signal::shutdown().await;
        tracing::info!("signal received; stopping the agent");
    })
    .await?;
    tracing::info!("agent stopped");
    Ok(())
}
