//! `meshid agent api …`: a debugging client for a running agent's SPIFFE
//! Workload API (what a workload on this machine would get).
//!
//! ```text
//! meshid agent api fetch [--socket PATH] [--output text|json] [--write DIR]
//! meshid agent api fetch --jwt --audience payments [--spiffe-id ID]
//! meshid agent api watch [--socket PATH]
//! ```
//!
//! The socket comes from `--socket`, else `SPIFFE_ENDPOINT_SOCKET` (as
//! every SPIFFE library reads it, `unix:/path` or a plain path), else the
//! agent's default.

mod render;
mod write;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use meshid_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use meshid_proto::workload::{JwtsvidRequest, X509svidRequest};
use tonic::transport::Channel;

use crate::admin_client::Output;

/// The agent's Workload API socket when nothing else is given.
const DEFAULT_SOCKET: &str = "/run/meshid/agent.sock";
/// How long to wait for the agent to answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `meshid agent api`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Fetches this process's X.509-SVIDs (or, with --jwt, a JWT-SVID) once.
    Fetch(FetchArgs),
    /// Prints every X.509-SVID update the agent pushes, until interrupted.
    Watch(Common),
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Workload API socket (`unix:/path` or a path).
    #[arg(long, env = "SPIFFE_ENDPOINT_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, clap::Args)]
struct FetchArgs {
    #[command(flatten)]
    common: Common,
    /// Fetch a JWT-SVID instead of X.509-SVIDs.
    #[arg(long)]
    jwt: bool,
    /// Audience of the JWT-SVID (repeatable; required with --jwt).
    #[arg(long, requires = "jwt")]
    audience: Vec<String>,
    /// Only this SPIFFE ID (must be one this process is entitled to).
    #[arg(long, requires = "jwt")]
    spiffe_id: Option<String>,
    /// Also write the X.509-SVIDs as files into DIR (created 0700 if
    /// missing), named as SPIRE does: svid.N.pem (leaf + intermediates),
    /// svid.N.key (PKCS#8, 0600), bundle.N.pem, federated_bundle.N.M.pem.
    #[arg(long, value_name = "DIR", conflicts_with = "jwt")]
    write: Option<PathBuf>,
}

/// Runs `meshid agent api …`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Fetch(a) if a.jwt => fetch_jwt(a).await,
        Command::Fetch(a) => fetch_x509(a.common, a.write.as_deref()).await,
        Command::Watch(a) => watch(a).await,
    }
}

async fn fetch_x509(c: Common, write_dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    let mut client = connect(&c.socket).await?;
    let mut stream = client
        .fetch_x509svid(with_header(X509svidRequest::default()))
        .await
        .map_err(status_error)?
        .into_inner();
    let first = tokio::time::timeout(TIMEOUT, stream.message())
        .await
        .context("the agent sent no X.509-SVID in time")?
        .map_err(status_error)?
        .context("the agent closed the stream without an X.509-SVID")?;
    println!("{}", render::x509(&first, c.output)?);
    if let Some(dir) = write_dir {
        // On stderr, so `--output json` stays one JSON document.
        for path in write::x509(dir, &first)? {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

async fn fetch_jwt(a: FetchArgs) -> anyhow::Result<()> {
    if a.audience.is_empty() {
        bail!("--jwt needs at least one --audience");
    }
    let mut client = connect(&a.common.socket).await?;
    let req = JwtsvidRequest {
        audience: a.audience,
        spiffe_id: a.spiffe_id.unwrap_or_default(),
    };
    let resp = tokio::time::timeout(TIMEOUT, client.fetch_jwtsvid(with_header(req)))
        .await
        .context("the agent did not answer in time")?
        .map_err(status_error)?
        .into_inner();
    println!("{}", render::jwt(&resp, a.common.output)?);
    Ok(())
}

async fn watch(c: Common) -> anyhow::Result<()> {
    let mut client = connect(&c.socket).await?;
    let mut stream = client
        .fetch_x509svid(with_header(X509svidRequest::default()))
        .await
        .map_err(status_error)?
        .into_inner();
    loop {
        tokio::select! {
            msg = stream.message() => match msg.map_err(status_error)? {
                Some(m) => println!("{}", render::x509(&m, c.output)?),
                None => bail!("the agent closed the stream"),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The socket path from `unix:/p`, `unix:///p` or `/p`.
fn socket_path(s: &str) -> anyhow::Result<PathBuf> {
    let path = s
        .strip_prefix("unix://")
        .or_else(|| s.strip_prefix("unix:"))
        .unwrap_or(s);
    if !path.starts_with('/') {
        bail!("socket {s:?} is not an absolute path (expected unix:/path/to/agent.sock)");
    }
    Ok(PathBuf::from(path))
}

/// A Workload API client on the agent's socket (`unix:/p`, `unix:///p` or `/p`).
pub(crate) async fn connect(socket: &str) -> anyhow::Result<SpiffeWorkloadApiClient<Channel>> {
    let path = socket_path(socket)?;
    let channel = meshid_runtime::uds::channel(&path).await.with_context(|| {
        format!(
            "cannot connect to the agent at {}; is `meshid agent run` running, and is this the right socket?",
            path.display()
        )
    })?;
    Ok(SpiffeWorkloadApiClient::new(channel)
        .max_decoding_message_size(meshid_proto::MAX_MESSAGE_SIZE))
}

/// `msg` with the metadata header every Workload API call must carry.
pub(crate) fn with_header<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        meshid_proto::WORKLOAD_HEADER,
        tonic::metadata::MetadataValue::from_static("true"),
    );
    r
}

fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("the agent answered {:?}: {}", s.code(), s.message())
}
