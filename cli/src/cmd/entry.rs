//! `meshid entry`.

/// Arguments of `meshid entry`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `meshid entry`.
pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`meshid entry` is not built yet")
}
