//! CA-side node attestation: [`NodeAttestor`] turns an agent's evidence
//! into its SPIFFE ID and node selectors.

pub mod join_token;
pub mod k8s_psat;

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use meshid_identity::{Selector, SpiffeId};

pub use join_token::JoinTokenAttestor;
pub use k8s_psat::K8sPsatAttestor;

/// What attestation proved about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedNode {
    /// The agent's SPIFFE ID.
    pub agent_id: SpiffeId,
    /// Node selectors (an alias ID is recorded as `join_token:alias:<id>`).
    pub selectors: Vec<Selector>,
    /// The tenant the agent belongs to (its join token's); `""` for a
    /// platform agent.
    pub tenant: String,
}

/// Why attestation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// The evidence is malformed.
    #[error("attestation evidence is malformed: {0}")]
    Malformed(&'static str),
    /// The evidence was checked and refused (unknown, expired or used token).
    #[error("attestation refused: {0}")]
    Refused(String),
    /// The attestor could not reach its backing state.
    #[error("attestation could not be checked: {0}")]
    Unavailable(String),
}

/// Verifies one kind of node evidence.
#[async_trait]
pub trait NodeAttestor: Send + Sync + fmt::Debug {
    /// The attestation type agents name in `AttestRequest` (`join_token`,
    /// `k8s_psat`).
    fn name(&self) -> &'static str;
    /// Checks `payload` at `now`.
    async fn attest(&self, payload: &[u8], now: SystemTime) -> Result<AttestedNode, AttestError>;
}

/// The selector type under which node aliases are recorded.
pub const ALIAS_SELECTOR_TYPE: &str = "join_token";
/// The selector value prefix of a node alias: `join_token:alias:<spiffe id>`.
pub const ALIAS_SELECTOR_PREFIX: &str = "alias:";

/// The node alias IDs recorded in an agent's selectors. A reserved ID (the
/// CA's or another agent's, [`SpiffeId::is_reserved`]) is never an alias:
/// it would let this agent serve that agent's entries.
pub fn aliases(selectors: &[Selector]) -> Vec<SpiffeId> {
    selectors
        .iter()
        .filter(|s| s.kind() == ALIAS_SELECTOR_TYPE)
        .filter_map(|s| s.value().strip_prefix(ALIAS_SELECTOR_PREFIX))
        .filter_map(|v| SpiffeId::parse(v).ok())
        .filter(|id| !id.is_reserved())
        .collect()
}
