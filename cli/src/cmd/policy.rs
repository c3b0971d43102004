//! `meshid policy`.

/// Arguments of `meshid policy`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `meshid policy`.
pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`meshid policy` is not built yet")
}
