//! `meshid up`.

/// Arguments of `meshid up`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `meshid up`.
pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`meshid up` is not built yet")
}
