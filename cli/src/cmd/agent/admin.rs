//! `meshid agent list|show|evict|ban`: agent administration on the CA.

/// Arguments of `meshid agent list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {}

/// Arguments naming one agent.
#[derive(Debug, clap::Args)]
pub struct IdArgs {}

/// `meshid agent list`.
pub async fn list(_a: ListArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

/// `meshid agent show`.
pub async fn show(_a: IdArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

/// `meshid agent evict`.
pub async fn evict(_a: IdArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

/// `meshid agent ban`.
pub async fn ban(_a: IdArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
