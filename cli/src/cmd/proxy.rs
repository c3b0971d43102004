//! `meshid proxy`.

/// Arguments of `meshid proxy`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `meshid proxy`.
pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`meshid proxy` is not built yet")
}
