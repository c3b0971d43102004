//! The `k8s_psat` node attestation evidence: what an agent on Kubernetes
//! sends in `AttestRequest.payload` and the CA reads, so both sides share
//! one format, one set of bounds and one cluster-name rule.
//!
//! ```json
//! {"cluster": "prod", "token": "<projected service-account JWT>"}
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// The attestation type name (`AttestRequest.attestation_type`).
pub const ATTESTATION_TYPE: &str = "k8s_psat";
/// Largest payload the CA accepts, in bytes.
pub const MAX_PAYLOAD_LEN: usize = 16 * 1024;
/// Largest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest cluster name: it is a path segment of the agent's SPIFFE ID.
pub const MAX_CLUSTER_LEN: usize = 63;

/// The evidence. `Debug` never prints the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// The configured cluster the agent runs in.
    pub cluster: String,
    /// The agent pod's projected service-account token.
    pub token: String,
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload")
            .field("cluster", &self.cluster)
            .field("token", &format_args!("<{} bytes>", self.token.len()))
            .finish()
    }
}

/// Whether `name` is a usable cluster name: 1 to [`MAX_CLUSTER_LEN`] of
/// `a-z`, `0-9` and `-`.
pub fn is_valid_cluster(name: &str) -> bool {
    (1..=MAX_CLUSTER_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names() {
        for good in ["a", "prod", "edge-eu-1", &"a".repeat(MAX_CLUSTER_LEN)] {
            assert!(is_valid_cluster(good), "{good}");
        }
        for bad in [
            "",
            "Prod",
            "a_b",
            "a/b",
            "a.b",
            &"a".repeat(MAX_CLUSTER_LEN + 1),
        ] {
            assert!(!is_valid_cluster(bad), "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let p = Payload {
            cluster: "prod".into(),
            token: "secret.jwt.value".into(),
        };
        let shown = format!("{p:?}");
        assert!(
            shown.contains("prod") && !shown.contains("secret"),
            "{shown}"
        );
    }
}
