//! Counting a listener's open connections, in total and per Unix user.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Why a connection was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The listener holds [`max_connections`](super::UdsLimits::max_connections).
    MaxConnections,
    /// This user holds
    /// [`max_connections_per_uid`](super::UdsLimits::max_connections_per_uid).
    MaxConnectionsPerUid,
    /// The peer's credentials could not be read.
    NoPeerCredentials,
    /// `accept(2)` failed (e.g. out of file descriptors).
    AcceptFailed,
}

impl Refusal {
    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxConnections => "max_connections",
            Self::MaxConnectionsPerUid => "max_connections_per_uid",
            Self::NoPeerCredentials => "no_peer_credentials",
            Self::AcceptFailed => "accept_failed",
        }
    }
}

/// Open connections of one listener; hands out [`Permit`]s within limits.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_uid: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_uid: HashMap<u32, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    uid: u32,
}

// === impl Admission ===

impl Admission {
    /// Limits of `max_total` connections, `max_per_uid` for one user.
    pub fn new(max_total: usize, max_per_uid: usize) -> Self {
        Self {
            max_total,
            max_per_uid,
            open: Mutex::new(Open::default()),
        }
    }

    /// A permit for a connection of `uid`, or why there is none.
    pub fn admit(self: &Arc<Self>, uid: u32) -> Result<Permit, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_total {
            return Err(Refusal::MaxConnections);
        }
        let mine = open.by_uid.entry(uid).or_insert(0);
        if *mine >= self.max_per_uid {
            return Err(Refusal::MaxConnectionsPerUid);
        }
        *mine += 1;
        open.total += 1;
        Ok(Permit {
            admission: self.clone(),
            uid,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

// === impl Permit ===

impl Permit {
    /// The Unix user that holds it.
    pub fn uid(&self) -> u32 {
        self.uid
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_uid.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_uid.remove(&self.uid);
            }
        }
    }
}
