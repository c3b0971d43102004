//! Workload attestation: from a caller on the agent's Unix socket to the
//! selectors that describe it (`unix:uid:1000`, `unix:path:/usr/bin/app`, …).
//!
//! ```text
//!  accept() ──▶ UdsConnection { PeerInfo (SO_PEERCRED + start time) }
//!                    │
//!                    ▼
//!  WorkloadAttestor::attest(&PeerInfo) ──▶ Vec<Selector>
//!                    │   (UnixAttestor: /proc/<pid>/{stat,status,exe};
//!                    │    K8sAttestor: /proc/<pid>/cgroup + the kubelet;
//!                    │    ComposedAttestor: the union of both)
//!                    ▼
//!  ProcessIdentity::still_same() right before an answer is sent
//! ```
//!
//! The kernel's peer credentials are the root of trust; /proc adds detail
//! and is re-checked (start time, uid) so a pid recycled by another process
//! mid-attestation is detected instead of trusted.

mod compose;
mod error;
mod exe_hash;
pub mod k8s;
mod peer;
mod procfs;
mod uds;
mod unix;
mod users;

pub use compose::ComposedAttestor;
pub use error::AttestError;
pub use exe_hash::{DEFAULT_MAX_HASH_BYTES, ExeHasher};
pub use k8s::{K8sAttestor, K8sAttestorConfig};
pub use peer::{PeerInfo, ProcessIdentity};
pub use uds::{UdsConnection, incoming};
pub use unix::{UnixAttestor, UnixAttestorConfig};
pub use users::NameResolver;

use meshid_identity::Selector;

/// Turns a connected peer into the selectors that describe it.
///
/// Implementations must fail closed: when in doubt, return an error rather
/// than selectors that might belong to another process.
#[async_trait::async_trait]
pub trait WorkloadAttestor: Send + Sync + std::fmt::Debug {
    /// Attests the process behind `peer`.
    async fn attest(&self, peer: &PeerInfo) -> Result<Vec<Selector>, AttestError>;
}
