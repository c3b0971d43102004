//! Re-issue on CA key rotation: which SVIDs the CA wants replaced early.
//!
//! Every sync carries the CA's key state ([`CaKeys`], from
//! `SyncResponse.ca_keys`): the keys signing now (one per CA replica) and
//! the tainted ones, each named by the keyIdentifier that the leaves it
//! signs carry in their AuthorityKeyIdentifier. Each cached SVID (and the
//! agent's own) keeps a [`KeyWatch`]: the AKI of its leaf, read once when
//! it was cached, and the plan to re-issue it:
//!
//! - signed by a tainted key: re-issue at once;
//! - signed by a key that is not active (an old key after a rotation):
//!   re-issue at a random point within `reissue_spread`, drawn once per
//!   SVID and key set, so 10,000 SVIDs do not hit the CA in the same second
//!   and a new sync with the same keys does not move the point;
//! - a CA that sends no key state (it predates rotation): nothing early.
//!
//! An SVID issued while a key set was in force is not re-planned until the
//! set changes: a CA that still signs with a tainted key (its successor is
//! not active yet) is not asked again at every sync.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::node_client::CaError;

/// Most keys accepted in each of `active` and `tainted`.
pub const MAX_KEYS: usize = 256;
/// Longest key identifier accepted, in bytes (SHA-1 ones are 20, SHA-256 32).
pub const MAX_KEY_ID_LEN: usize = 64;

/// The CA's X.509 key state from one sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaKeys {
    active: BTreeSet<Vec<u8>>,
    tainted: BTreeSet<Vec<u8>>,
    spread: Duration,
}

/// Why an SVID is re-issued before its normal rotation point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Signed by a key that no longer signs (after a rotation).
    Rotation,
    /// Signed by a key the CA marked compromised.
    Taint,
}

/// When to re-issue one SVID, and under which key set that was decided.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The re-issue point.
    pub at: SystemTime,
    /// Why.
    pub reason: Reason,
    keys: Arc<CaKeys>,
}

/// One SVID's signing key and its re-issue plan.
#[derive(Debug, Clone, Default)]
pub struct KeyWatch {
    aki: Option<Vec<u8>>,
    issued_under: Option<Arc<CaKeys>>,
    plan: Option<Plan>,
}

// === impl CaKeys ===

impl CaKeys {
    /// The key state of a sync; `None` when the CA sent none. Refuses more
    /// than [`MAX_KEYS`] keys per list or a key ID longer than
    /// [`MAX_KEY_ID_LEN`].
    pub fn from_wire(keys: Option<&meshid_proto::ca::CaKeys>) -> Result<Option<Self>, CaError> {
        let Some(k) = keys else { return Ok(None) };
        let set = |what: &str, ids: &[Vec<u8>]| {
            if ids.len() > MAX_KEYS {
                return Err(CaError::BadResponse(format!(
                    "{} {what} CA keys; at most {MAX_KEYS}",
                    ids.len()
                )));
            }
            if ids.iter().any(|i| i.is_empty() || i.len() > MAX_KEY_ID_LEN) {
                return Err(CaError::BadResponse(format!(
                    "a {what} CA key ID is empty or longer than {MAX_KEY_ID_LEN} bytes"
                )));
            }
            Ok(ids.iter().cloned().collect::<BTreeSet<_>>())
        };
        Ok(Some(Self {
            active: set("active", &k.active)?,
            tainted: set("tainted", &k.tainted)?,
            spread: Duration::from_secs(u64::from(k.reissue_spread_seconds)),
        }))
    }

    /// Why an SVID whose leaf carries `aki` must be re-issued early, if it
    /// must. A leaf without an AKI cannot be matched and is left alone.
    pub fn reason(&self, aki: Option<&[u8]>) -> Option<Reason> {
        let aki = aki?;
        if self.tainted.contains(aki) {
            Some(Reason::Taint)
        } else if !self.active.is_empty() && !self.active.contains(aki) {
            Some(Reason::Rotation)
        } else {
            None
        }
    }
}

// === impl Reason ===

impl Reason {
    /// The `reason` label of `meshid_agent_svids_reissued_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotation => "rotation",
            Self::Taint => "taint",
        }
    }
}

// === impl KeyWatch ===

impl KeyWatch {
    /// The watch of an SVID whose leaf is `leaf` (DER), issued while `keys`
    /// were in force.
    pub fn new(leaf: &[u8], keys: Option<Arc<CaKeys>>) -> Self {
        Self {
            aki: meshid_identity::x509::authority_key_id(leaf),
            issued_under: keys,
            plan: None,
        }
    }

    /// Takes the key state of a sync at `now`: keeps the plan made for
    /// equal keys, else decides again.
    pub fn update(&mut self, keys: Option<&Arc<CaKeys>>, now: SystemTime) {
        let Some(keys) = keys else {
            self.plan = None;
            return;
        };
        if self.issued_under.as_deref() == Some(keys) {
            self.plan = None;
            return;
        }
        if let Some(p) = &self.plan
            && *p.keys == **keys
        {
            return;
        }
        self.plan = keys.reason(self.aki.as_deref()).map(|reason| {
            let delay = match reason {
                Reason::Taint => Duration::ZERO,
                Reason::Rotation if keys.spread.is_zero() => Duration::ZERO,
                Reason::Rotation => keys.spread.mul_f64(rand::rng().random_range(0.0..=1.0)),
            };
            Plan {
                at: now + delay,
                reason,
                keys: keys.clone(),
            }
        });
    }

    /// The re-issue plan, if the CA's keys call for one.
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
