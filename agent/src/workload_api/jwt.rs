//! Where JWT-SVIDs come from: the seam between the Workload API and the
//! SVID manager (which asks the CA to sign).

/// Why a JWT-SVID could not be minted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The CA could not be reached or failed; the workload should retry.
    #[error("cannot mint a JWT-SVID right now: {0}; retry later")]
    Unavailable(String),
    /// The CA refused (for example the entry was deleted meanwhile).
    #[error("the CA refused to mint a JWT-SVID: {0}")]
    Refused(String),
}

/// Mints JWT-SVIDs for a registration entry.
///
/// The Workload API has already checked that the caller is entitled to
/// `entry_id`; the implementation only obtains a signed token (usually from
/// the CA, possibly from a cache of unexpired tokens for the same audience).
#[async_trait::async_trait]
pub trait JwtMinter: Send + Sync + std::fmt::Debug {
    /// A JWT-SVID for the entry `entry_id` with audience `audience` (never
    /// empty).
    async fn mint(&self, entry_id: &str, audience: &[String]) -> Result<String, MintError>;
}
