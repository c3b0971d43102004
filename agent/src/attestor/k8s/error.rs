//! Why the k8s attestor could not describe a caller.

use std::path::PathBuf;
use std::time::Duration;

/// A k8s attestation (or its set-up) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum K8sError {
    /// `[workload_attestor.k8s]` cannot be used as written.
    #[error("[workload_attestor.k8s] {field}: {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The kubelet CA file cannot be read or holds no certificate.
    #[error(
        "cannot use the kubelet CA {path}: {reason} (set kubelet_ca_path, or skip_kubelet_verification)"
    )]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The bearer token file cannot be read.
    #[error("cannot read the kubelet bearer token {path}: {reason} (set token_path)")]
    Token {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No connection to the kubelet.
    #[error("cannot connect to the kubelet at {endpoint}: {reason}")]
    Connect {
        /// `host:port`.
        endpoint: String,
        /// The error.
        reason: String,
    },
    /// The TLS handshake failed (e.g. the certificate did not verify).
    #[error(
        "TLS handshake with the kubelet at {endpoint} failed: {reason} (the kubelet's serving certificate must verify against kubelet_ca_path for kubelet_tls_server_name, default the URL's host)"
    )]
    Tls {
        /// `host:port`.
        endpoint: String,
        /// The error.
        reason: String,
    },
    /// The kubelet did not answer in time.
    #[error("the kubelet at {endpoint} did not answer within {timeout:?}")]
    Timeout {
        /// `host:port`.
        endpoint: String,
        /// The bound.
        timeout: Duration,
    },
    /// The kubelet refused the token (401/403).
    #[error(
        "the kubelet at {endpoint} refused the agent's token ({status}): {body}; the agent's service account needs `get` on `nodes/proxy` (RBAC) and a token the kubelet accepts"
    )]
    Unauthorized {
        /// `host:port`.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// Any other failed answer.
    #[error("the kubelet at {endpoint} answered GET /pods with {status}: {body}")]
    Status {
        /// `host:port`.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// The answer is too large, cut short or not a pod list.
    #[error("the kubelet at {endpoint} sent an unusable pod list: {reason}")]
    Body {
        /// `host:port`.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The caller's pod or container did not show up in time.
    #[error(
        "{what} is not listed by the kubelet after waiting {waited:?} (max_wait); a container that is starting is listed within seconds, so this process is not in a pod the kubelet knows"
    )]
    NotListed {
        /// `pod <uid>` or `container <id> of pod <ns>/<name>`.
        what: String,
        /// How long the attestor waited.
        waited: Duration,
    },
}
