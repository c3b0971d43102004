//! The `unix` workload attestor: selectors from the kernel's peer
//! credentials and the process's /proc entries.
//!
//! | selector | from |
//! |---|---|
//! | `unix:uid:N`, `unix:gid:N` | SO_PEERCRED (checked against /proc status) |
//! | `unix:user:NAME`, `unix:group:NAME` | name service |
//! | `unix:supplementary_gid:N`, `unix:supplementary_group:NAME` | `Groups:` in /proc status |
//! | `unix:path:/abs/exe` | readlink /proc/\<pid\>/exe (may end in ` (deleted)`) |
//! | `unix:sha256:HEX` | the running executable's content (optional) |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use meshid_identity::Selector;
use tokio::sync::Semaphore;

use super::exe_hash::{DEFAULT_MAX_HASH_BYTES, ExeHasher};
use super::procfs::{ProcFs, io_error};
use super::{AttestError, NameResolver, PeerInfo, ProcessIdentity, WorkloadAttestor};

/// Selector type produced by this attestor.
const KIND: &str = "unix";

/// Most attestations running at once. Each reads a few /proc files (and
/// asks the name service) on tokio's blocking pool; unbounded, a burst of
/// 2,000 connections made the pool start ~75 threads, each with its own
/// allocator arena, for work that takes microseconds. Callers beyond the
/// bound wait their turn in arrival order.
const MAX_CONCURRENT_ATTESTATIONS: usize = 8;

/// Settings of the unix attestor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnixAttestorConfig {
    /// Hash each workload's executable for `unix:sha256:` selectors (costs
    /// one read of the binary per new file; results are cached).
    pub hash_executables: bool,
    /// Executables larger than this are not hashed (no `sha256` selector).
    pub max_hash_bytes: u64,
}

impl Default for UnixAttestorConfig {
    fn default() -> Self {
        Self {
            hash_executables: false,
            max_hash_bytes: DEFAULT_MAX_HASH_BYTES,
        }
    }
}

/// Attests Unix processes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UnixAttestor {
    proc_root: PathBuf,
    names: NameResolver,
    hash_executables: bool,
    hasher: Arc<ExeHasher>,
    permits: Arc<Semaphore>,
}

// === impl UnixAttestor ===

impl UnixAttestor {
    /// An attestor over the real `/proc` and the system's name service.
    pub fn new(config: &UnixAttestorConfig) -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
            names: NameResolver::System,
            hash_executables: config.hash_executables,
            hasher: Arc::new(ExeHasher::new(config.max_hash_bytes)),
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_ATTESTATIONS)),
        }
    }

    /// Reads processes under `root` instead of `/proc`.
    pub fn with_proc_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.proc_root = root.into();
        self
    }

    /// Resolves user and group names with `names`.
    pub fn with_names(mut self, names: NameResolver) -> Self {
        self.names = names;
        self
    }

    /// The /proc root in use.
    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    /// Attests `peer` on the calling thread (reads /proc; may block
    /// briefly, longer when hashing a large executable).
    pub fn attest_blocking(&self, peer: &PeerInfo) -> Result<Vec<Selector>, AttestError> {
        let pid = peer.pid;
        let procfs = ProcFs::new(&self.proc_root);
        // The process is pinned by its start time: the one read at accept
        // if there is one (then the check after the reads below is enough:
        // a pid is not reused while its process lives, and a new process
        // would have another start time), else one read now.
        let start_time = match peer.start_time {
            Some(t) => t,
            None => ProcessIdentity::capture(&self.proc_root, pid, None)?.start_time(),
        };

        let status = procfs.status(pid)?;
        if status.euid != peer.uid {
            return Err(AttestError::ProcessChanged {
                pid,
                reason: format!(
                    "effective uid is {} but was {} when it connected",
                    status.euid, peer.uid
                ),
            });
        }
        if status.egid != peer.gid {
            return Err(AttestError::ProcessChanged {
                pid,
                reason: format!(
                    "effective gid is {} but was {} when it connected",
                    status.egid, peer.gid
                ),
            });
        }
        let exe = procfs.exe_path(pid)?;
        let sha256 = if self.hash_executables {
            let link = procfs.exe_link(pid);
            self.hasher
                .hash(&link)
                .map_err(|e| io_error(link.clone(), pid, e))?
        } else {
            None
        };

        // Everything above must describe the process that connected.
        ProcessIdentity::capture(&self.proc_root, pid, Some(start_time))?;

        let mut out = Vec::new();
        push(&mut out, format!("uid:{}", peer.uid));
        push(&mut out, format!("gid:{}", peer.gid));
        if let Some(name) = self.names.user_name(peer.uid) {
            push(&mut out, format!("user:{name}"));
        }
        if let Some(name) = self.names.group_name(peer.gid) {
            push(&mut out, format!("group:{name}"));
        }
        for gid in &status.groups {
            push(&mut out, format!("supplementary_gid:{gid}"));
            if let Some(name) = self.names.group_name(*gid) {
                push(&mut out, format!("supplementary_group:{name}"));
            }
        }
        push(&mut out, format!("path:{}", exe.display()));
        if let Some(hex) = sha256 {
            push(&mut out, format!("sha256:{hex}"));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// Adds a `unix:` selector; a value that is not a valid selector (control
/// characters, over-long path) is left out, which only ever narrows what
/// the workload matches.
fn push(out: &mut Vec<Selector>, value: String) {
    match Selector::new(KIND, &value) {
        Ok(s) => out.push(s),
        Err(e) => tracing::warn!(error = %e, "leaving out an unusable unix selector"),
    }
}

#[async_trait::async_trait]
impl WorkloadAttestor for UnixAttestor {
    async fn attest(&self, peer: &PeerInfo) -> Result<Vec<Selector>, AttestError> {
        // The semaphore is never closed; an error would mean it was. The
        // permit goes with the work, so a caller that gives up early does
        // not free a slot while its /proc reads still run.
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| AttestError::Task(e.to_string()))?;
        let this = self.clone();
        let peer = *peer;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            this.attest_blocking(&peer)
        })
        .await
        .map_err(|e| AttestError::Task(e.to_string()))?
    }
}
