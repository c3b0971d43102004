//! `meshid token`.

/// Arguments of `meshid token`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `meshid token`.
pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`meshid token` is not built yet")
}
