//! Who is on the other end of a Unix socket, as the kernel reports it.

use std::path::{Path, PathBuf};

use tokio::net::UnixStream;

use super::AttestError;
use super::procfs::ProcFs;

/// The kernel's credentials of a connected peer (`SO_PEERCRED`), taken when
/// it connected, plus the process start time read right after accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerInfo {
    /// Process id of the peer (in the agent's pid namespace).
    pub pid: i32,
    /// Effective uid of the peer at connect time.
    pub uid: u32,
    /// Effective gid of the peer at connect time.
    pub gid: u32,
    /// Start time of `pid` (clock ticks since boot, `/proc/<pid>/stat` field
    /// 22) read just after accept; `None` when it could not be read. The
    /// attestor refuses a process whose start time differs.
    pub start_time: Option<u64>,
}

/// One specific process: a pid plus its start time, which together are not
/// reused. Use [`ProcessIdentity::still_same`] right before sending an
/// answer to make sure the pid was not recycled meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity {
    pid: i32,
    start_time: u64,
    proc_root: PathBuf,
}

// === impl PeerInfo ===

impl PeerInfo {
    /// Reads the peer credentials of a connected stream and the peer's
    /// start time from the real `/proc`.
    pub fn from_stream(stream: &UnixStream) -> Result<Self, AttestError> {
        let cred = stream.peer_cred().map_err(AttestError::PeerCred)?;
        let pid = match cred.pid() {
            Some(pid) if pid > 0 => pid,
            _ => return Err(AttestError::NoPeerPid),
        };
        let start_time = ProcFs::new(Path::new("/proc"))
            .stat(pid)
            .ok()
            .map(|s| s.start_time);
        Ok(Self {
            pid,
            uid: cred.uid(),
            gid: cred.gid(),
            start_time,
        })
    }

    /// The process behind this peer, pinned by its start time in the real
    /// `/proc`. With the start time recorded at accept this reads nothing
    /// (attestation and [`ProcessIdentity::still_same`] check it against
    /// /proc); without one it is read now, failing if the process is gone.
    pub fn process(&self) -> Result<ProcessIdentity, AttestError> {
        match self.start_time {
            Some(start_time) => Ok(ProcessIdentity {
                pid: self.pid,
                start_time,
                proc_root: PathBuf::from("/proc"),
            }),
            None => ProcessIdentity::capture(Path::new("/proc"), self.pid, None),
        }
    }
}

// === impl ProcessIdentity ===

impl ProcessIdentity {
    /// Reads `pid`'s start time under `proc_root`. With `expected_start`
    /// set, a different start time is [`AttestError::ProcessChanged`].
    pub fn capture(
        proc_root: &Path,
        pid: i32,
        expected_start: Option<u64>,
    ) -> Result<Self, AttestError> {
        let stat = ProcFs::new(proc_root).stat(pid)?;
        if let Some(expected) = expected_start
            && expected != stat.start_time
        {
            return Err(AttestError::ProcessChanged {
                pid,
                reason: format!(
                    "start time is {} but was {expected} when it connected",
                    stat.start_time
                ),
            });
        }
        Ok(Self {
            pid,
            start_time: stat.start_time,
            proc_root: proc_root.to_owned(),
        })
    }

    /// The pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The start time (clock ticks since boot).
    pub fn start_time(&self) -> u64 {
        self.start_time
    }

    /// True if the pid still names this very process (alive, not a zombie,
    /// same start time).
    pub fn still_same(&self) -> bool {
        matches!(
            ProcFs::new(&self.proc_root).stat(self.pid),
            Ok(stat) if stat.start_time == self.start_time
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid no process can have (above the kernel's PID_MAX_LIMIT).
    const NO_SUCH_PID: i32 = i32::MAX;

    #[test]
    fn process_with_accept_time_start_reads_nothing_and_is_checked_later() {
        let peer = PeerInfo {
            pid: NO_SUCH_PID,
            uid: 0,
            gid: 0,
            start_time: Some(42),
        };
        let process = peer.process().map_err(|e| e.to_string());
        assert_eq!(process.as_ref().map(ProcessIdentity::start_time), Ok(42));
        assert!(
            !process.is_ok_and(|p| p.still_same()),
            "a gone process is never the same"
        );
    }

    #[test]
    fn process_without_start_time_reads_proc_and_fails_closed() {
        let peer = PeerInfo {
            pid: NO_SUCH_PID,
            uid: 0,
            gid: 0,
            start_time: None,
        };
        assert!(matches!(
            peer.process(),
            Err(AttestError::ProcessGone { pid: NO_SUCH_PID })
        ));
    }
}
