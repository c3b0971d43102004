//! `meshid agent api …`.

/// Arguments of `meshid agent api`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `meshid agent api …`.
pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`meshid agent api` is not built yet")
}
