//! Running this CA below another meshid CA, and what this CA grants the
//! CAs below it.
//!
//! ```toml
//! # This CA is a downstream of another meshid CA of the same trust domain:
//! [upstream.meshid]
//! ca_address = "ca-root.example.org:8443"
//! trust_bundle_file = "/etc/meshid/upstream-bundle.pem"
//! join_token_file = "/etc/meshid/upstream-join-token"
//! # ca_spiffe_id = "spiffe://example.org/meshid/ca"   (the default)
//!
//! # What this CA signs for its own downstream CAs:
//! [downstream]
//! ca_ttl = "24h"
//! ```
//!
//! The names are the agent's (`ca_address`, `ca_spiffe_id`,
//! `trust_bundle_file`, `join_token`): a downstream CA attests to its
//! upstream exactly as an agent does.

use std::path::PathBuf;
use std::time::Duration;

pub use meshid_identity::JoinToken;
use meshid_identity::{SpiffeId, TrustDomain};
use serde::Deserialize;

use super::{ConfigError, UpstreamConfig};

/// The environment variable read for the join token when neither
/// `join_token` nor `join_token_file` is set (the agent's too).
pub const JOIN_TOKEN_ENV: &str = "MESHID_JOIN_TOKEN";
/// Largest join token file read.
const MAX_TOKEN_FILE: u64 = 4096;

/// `[upstream.meshid]`: the upstream meshid CA this CA attests to and gets
/// its intermediate from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshidUpstreamConfig {
    /// The upstream CA's node API, `host:port`.
    pub ca_address: String,
    /// The SPIFFE ID the upstream CA must present (default
    /// `spiffe://<trust_domain>/meshid/ca`).
    #[serde(default)]
    pub ca_spiffe_id: Option<SpiffeId>,
    /// PEM roots that authenticate the upstream CA on first attestation.
    pub trust_bundle_file: PathBuf,
    /// One-time join token (else `join_token_file`, else `MESHID_JOIN_TOKEN`).
    #[serde(default)]
    pub join_token: Option<JoinToken>,
    /// A file holding the join token.
    #[serde(default)]
    pub join_token_file: Option<PathBuf>,
}

/// `[downstream]`: what this CA signs for downstream CAs below it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownstreamConfig {
    /// Lifetime of a downstream CA's intermediate (never past this CA's own
    /// notAfter); the downstream renews it at half its life.
    #[serde(default = "default_ca_ttl", with = "meshid_runtime::duration")]
    pub ca_ttl: Duration,
}

fn default_ca_ttl() -> Duration {
    crate::node::DEFAULT_DOWNSTREAM_CA_TTL
}

impl Default for DownstreamConfig {
    fn default() -> Self {
        Self {
            ca_ttl: default_ca_ttl(),
        }
    }
}

// === impl UpstreamConfig ===

impl UpstreamConfig {
    /// `[upstream.meshid]`: the intermediate from another meshid CA (no
    /// file settings).
    pub fn meshid(meshid: MeshidUpstreamConfig) -> Self {
        let mut up = Self::dir(PathBuf::new());
        up.dir = None;
        up.meshid = Some(meshid);
        up
    }
}

// === impl MeshidUpstreamConfig ===

impl MeshidUpstreamConfig {
    /// An upstream at `ca_address` trusted through `trust_bundle_file`,
    /// the other settings at their defaults (no join token).
    pub fn new(ca_address: impl Into<String>, trust_bundle_file: impl Into<PathBuf>) -> Self {
        Self {
            ca_address: ca_address.into(),
            ca_spiffe_id: None,
            trust_bundle_file: trust_bundle_file.into(),
            join_token: None,
            join_token_file: None,
        }
    }

    /// The SPIFFE ID the upstream CA must present.
    pub fn ca_spiffe_id(&self, td: &TrustDomain) -> Result<SpiffeId, ConfigError> {
        let id = match &self.ca_spiffe_id {
            Some(id) => id.clone(),
            None => td
                .id_with_path(meshid_identity::id::CA_PATH)
                .map_err(|e| invalid("upstream.meshid.ca_spiffe_id", e.to_string()))?,
        };
        if !id.is_member_of(td) {
            return Err(invalid(
                "upstream.meshid.ca_spiffe_id",
                format!(
                    "{id} is not in the trust domain {td}; a downstream CA runs in its \
                     upstream's trust domain"
                ),
            ));
        }
        Ok(id)
    }

    /// The join token: `join_token`, else the first line of
    /// `join_token_file`, else `MESHID_JOIN_TOKEN`; `None` when none is set
    /// (fine while a stored agent SVID is still valid).
    pub fn join_token(&self) -> Result<Option<JoinToken>, ConfigError> {
        if let Some(t) = &self.join_token {
            return Ok(Some(t.clone()));
        }
        if let Some(path) = &self.join_token_file {
            let field = "upstream.meshid.join_token_file";
            let text = meshid_runtime::fs::read_to_string(path, MAX_TOKEN_FILE)
                .map_err(|e| invalid(field, format!("{}: {e}", path.display())))?;
            let token = text.lines().next().unwrap_or("").trim();
            if token.is_empty() {
                return Err(invalid(field, format!("{} is empty", path.display())));
            }
            return Ok(Some(JoinToken::new(token)));
        }
        Ok(std::env::var(JOIN_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
            .map(JoinToken::new))
    }

    /// Checks the address form, the pinned ID and that the bundle file exists.
    pub(super) fn check(&self, td: Option<&TrustDomain>) -> Result<(), ConfigError> {
        if self
            .ca_address
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(invalid(
                "upstream.meshid.ca_address",
                "must be host:port, e.g. \"ca-root.example.org:8443\"".into(),
            ));
        }
        if let Some(td) = td {
            self.ca_spiffe_id(td)?;
        }
        if self.join_token.is_some() && self.join_token_file.is_some() {
            return Err(invalid(
                "upstream.meshid.join_token",
                "set join_token or join_token_file, not both".into(),
            ));
        }
        std::fs::metadata(&self.trust_bundle_file).map_err(|e| {
            invalid(
                "upstream.meshid.trust_bundle_file",
                format!(
                    "{}: {e}; give the upstream CA's roots (PEM), e.g. from \
                     `meshid bundle show` on the upstream",
                    self.trust_bundle_file.display()
                ),
            )
        })?;
        Ok(())
    }
}

fn invalid(field: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { field, reason }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
