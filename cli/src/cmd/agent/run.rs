//! `meshid agent run`.

/// Arguments of `meshid agent run`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the agent until SIGINT/SIGTERM.
pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`meshid agent run` is not built yet")
}
