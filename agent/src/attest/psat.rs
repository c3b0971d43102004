//! The `k8s_psat` node attestation: the agent proves its node with its
//! projected service-account token (audience `meshid-ca`, bound to the
//! agent's pod and node), re-read from its file at every attempt because
//! the kubelet rotates it.
//!
//! The payload of `AttestRequest` is [`meshid_identity::k8s_psat::Payload`]
//! as JSON (`{"cluster": "prod", "token": "<JWT>"}`), the format the CA reads.

use std::path::{Path, PathBuf};

use meshid_identity::k8s_psat::{self, Payload};
use serde::Deserialize;

/// The attestation type name for projected service-account tokens.
pub const K8S_PSAT_ATTESTATION: &str = k8s_psat::ATTESTATION_TYPE;
/// Where the projected token is mounted unless `token_path` says otherwise.
pub const DEFAULT_TOKEN_PATH: &str = "/var/run/secrets/meshid/token";
/// Largest token file accepted, in bytes (the CA's bound).
pub const MAX_TOKEN_LEN: u64 = k8s_psat::MAX_TOKEN_LEN as u64;

/// `[node_attestor.k8s_psat]` of the agent config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sPsatConfig {
    /// The cluster's name as the CA's `[node_attestor.k8s_psat.clusters.<name>]`
    /// knows it: 1 to 63 characters of `a-z`, `0-9` and `-`.
    pub cluster: String,
    /// The projected service-account token file (default
    /// [`DEFAULT_TOKEN_PATH`]); re-read at every attestation.
    #[serde(default = "default_token_path")]
    pub token_path: PathBuf,
}

/// Why a token could not be turned into a payload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PsatError {
    /// The token file could not be read.
    #[error(
        "cannot read the projected service-account token {path}: {reason} (mount a projected \
         serviceAccountToken volume with audience meshid-ca there, or set \
         [node_attestor.k8s_psat] token_path)"
    )]
    Read {
        /// The token file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file holds no token.
    #[error("the projected service-account token {0} is empty")]
    Empty(PathBuf),
}

fn default_token_path() -> PathBuf {
    PathBuf::from(DEFAULT_TOKEN_PATH)
}

// === impl K8sPsatConfig ===

impl K8sPsatConfig {
    /// Checks the cluster name and token path; the reason names the fix.
    pub fn check(&self) -> Result<(), String> {
        check_cluster(&self.cluster)?;
        if !self.token_path.is_absolute() {
            return Err(format!(
                "token_path {} must be an absolute path",
                self.token_path.display()
            ));
        }
        Ok(())
    }

    /// Reads the token file now and builds the attestation payload.
    pub fn payload(&self) -> Result<Vec<u8>, PsatError> {
        let token = read_token(&self.token_path)?;
        let payload = Payload {
            cluster: self.cluster.clone(),
            token,
        };
        // Serialising two strings cannot fail; the bound is the CA's.
        serde_json::to_vec(&payload).map_err(|e| PsatError::Read {
            path: self.token_path.clone(),
            reason: e.to_string(),
        })
    }
}

/// A cluster name the CA accepts: 1..=63 of `[a-z0-9-]`.
pub fn check_cluster(name: &str) -> Result<(), String> {
    if k8s_psat::is_valid_cluster(name) {
        Ok(())
    } else {
        Err(format!(
            "cluster {name:?} must be 1 to {} characters of a-z, 0-9 and '-' \
             (it is a path segment of the agent's SPIFFE ID)",
            k8s_psat::MAX_CLUSTER_LEN
        ))
    }
}

/// The token in `path` (at most [`MAX_TOKEN_LEN`] bytes), whitespace trimmed.
fn read_token(path: &Path) -> Result<String, PsatError> {
    let text =
        meshid_runtime::fs::read_to_string(path, MAX_TOKEN_LEN).map_err(|e| PsatError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(PsatError::Empty(path.to_owned()));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> K8sPsatConfig {
        K8sPsatConfig {
            cluster: "prod-1".into(),
            token_path: dir.join("token"),
        }
    }

    #[test]
    fn payload_is_the_cluster_and_the_token_read_now() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        std::fs::write(&c.token_path, "eyJ.first.sig\n").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&c.payload().unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cluster": "prod-1", "token": "eyJ.first.sig"})
        );
        // The kubelet rotated the token: the next payload carries the new one.
        std::fs::write(&c.token_path, "eyJ.second.sig").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&c.payload().unwrap()).unwrap();
        assert_eq!(v["token"], "eyJ.second.sig");
    }

    #[test]
    fn missing_empty_and_oversized_tokens_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let err = c.payload().unwrap_err().to_string();
        assert!(err.contains("token_path") && err.contains("token"), "{err}");
        std::fs::write(&c.token_path, " \n").unwrap();
        assert!(matches!(c.payload(), Err(PsatError::Empty(_))));
        std::fs::write(&c.token_path, "a".repeat(8 * 1024 + 1)).unwrap();
        let err = c.payload().unwrap_err().to_string();
        assert!(err.contains("larger than 8192"), "{err}");
        std::fs::write(&c.token_path, "a".repeat(8 * 1024)).unwrap();
        assert!(c.payload().unwrap().len() <= k8s_psat::MAX_PAYLOAD_LEN);
    }

    #[test]
    fn cluster_names_are_path_segments() {
        for good in ["prod", "eu-west-1", &"a".repeat(63)] {
            assert!(check_cluster(good).is_ok(), "{good}");
        }
        for bad in ["", "Prod", "a/b", "a.b", "a b", &"a".repeat(64)] {
            assert!(check_cluster(bad).is_err(), "{bad}");
        }
        let relative = K8sPsatConfig {
            cluster: "prod".into(),
            token_path: "token".into(),
        };
        assert!(relative.check().unwrap_err().contains("absolute"));
    }
}
