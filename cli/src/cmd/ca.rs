//! `meshid ca`.

/// Arguments of `meshid ca`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `meshid ca`.
pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`meshid ca` is not built yet")
}
