//! Why attesting a workload failed.

use std::io;
use std::path::PathBuf;

/// Why a workload could not be attested.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// The kernel could not report the peer's credentials.
    #[error("cannot read the peer credentials (SO_PEERCRED) of the connection: {0}")]
    PeerCred(#[source] io::Error),
    /// The kernel reported no usable pid (e.g. the peer lives in a pid
    /// namespace the agent cannot see).
    #[error(
        "the kernel reported no pid for the peer; run the agent in the host pid namespace \
         (hostPID: true) so workloads can be attested"
    )]
    NoPeerPid,
    /// The process exited (or became a zombie) before attestation finished.
    #[error("process {pid} exited before it could be attested")]
    ProcessGone {
        /// The peer's pid.
        pid: i32,
    },
    /// The pid now names a different process, or the process changed its
    /// credentials since it connected.
    #[error("process {pid} changed during attestation ({reason}); refusing to attest it")]
    ProcessChanged {
        /// The peer's pid.
        pid: i32,
        /// What changed.
        reason: String,
    },
    /// A /proc file could not be read.
    #[error(
        "cannot read {path}: {source} (the agent needs to run as root or with \
         CAP_SYS_PTRACE to inspect other users' processes)"
    )]
    ProcRead {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A /proc file did not have the expected format.
    #[error("unexpected content in {path}: {reason}")]
    ProcParse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The k8s attestor could not place the process in a pod.
    #[error(transparent)]
    K8s(#[from] super::k8s::K8sError),
    /// The background task doing the attestation failed.
    #[error("attestation task failed: {0}")]
    Task(String),
}
