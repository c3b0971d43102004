//! `meshid bundle`.

/// Arguments of `meshid bundle`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `meshid bundle`.
pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`meshid bundle` is not built yet")
}
