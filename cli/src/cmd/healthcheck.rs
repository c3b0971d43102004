//! `meshid healthcheck`: one bounded check for container probes.
//!
//! ```text
//! meshid healthcheck --url http://127.0.0.1:8081/readyz [--timeout 3s]
//! meshid healthcheck --socket unix:///run/meshid/agent.sock [--timeout 3s]
//! ```
//!
//! Exit status 0 when healthy; otherwise 1 with the reason on stderr.

use std::time::Duration;

use anyhow::Context;
use meshid_proto::workload::X509BundlesRequest;
use tonic::Code;

use super::agent::api;

/// Arguments of `meshid healthcheck`.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("target").required(true).args(["url", "socket"])),
    after_help = "Exit status: 0 healthy, 1 not healthy (the reason is on stderr), 2 bad usage."
)]
pub struct Args {
    /// An ops endpoint to GET, e.g. http://127.0.0.1:8081/readyz (CA,
    /// agent or proxy `ops_listen`); healthy when it answers 200 OK.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// An agent's Workload API socket (`unix:/path` or a path); healthy
    /// when the agent answers a FetchX509Bundles call, also "no identity
    /// for this caller" (the agent is up and attesting).
    #[arg(long, value_name = "PATH")]
    socket: Option<String>,
    /// Give up after this long, e.g. 500ms, 3s.
    #[arg(long, default_value = "3s", value_parser = meshid_runtime::duration::parse, value_name = "DURATION")]
    timeout: Duration,
}

/// Runs the check; `Ok` means healthy.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let healthy = match (&args.url, &args.socket) {
        (Some(url), _) => meshid_runtime::ops::probe(url, args.timeout)
            .await
            .map(|_| format!("{url} is ready"))?,
        (None, Some(socket)) => {
            let check = workload_api(socket);
            tokio::time::timeout(args.timeout, check)
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "the agent at {socket} did not answer within {:?}",
                        args.timeout
                    )
                })??
        }
        (None, None) => anyhow::bail!("give --url or --socket"),
    };
    println!("healthy: {healthy}");
    Ok(())
}

/// Asks the agent for the trust bundles once.
async fn workload_api(socket: &str) -> anyhow::Result<String> {
    let mut client = api::connect(socket).await?;
    let answer = client
        .fetch_x509_bundles(api::with_header(X509BundlesRequest::default()))
        .await;
    let first = match answer {
        Ok(stream) => stream.into_inner().message().await,
        Err(status) => Err(status),
    };
    match first {
        Ok(Some(bundles)) => Ok(format!(
            "the agent at {socket} answered with {} trust bundle(s)",
            bundles.bundles.len()
        )),
        Ok(None) => anyhow::bail!("the agent at {socket} closed the stream without an answer"),
        // The agent attested the caller and found no entry: it is serving.
        Err(s) if s.code() == Code::PermissionDenied => Ok(format!(
            "the agent at {socket} answered (no identity for this caller: {})",
            s.message()
        )),
        Err(s) => Err(s).with_context(|| format!("the agent at {socket} is not healthy")),
    }
}
