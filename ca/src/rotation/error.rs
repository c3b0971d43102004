//! Why a rotation step was refused or failed: [`RotationError`].

use super::LeaseError;
use crate::store::{KeyKind, StoreError};

/// A rotation step that was refused (the reason says what to do) or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// A key of this kind is prepared already.
    #[error("a {kind} key is prepared already ({slot}); activate it first")]
    AlreadyPrepared {
        /// X.509 or JWT.
        kind: KeyKind,
        /// The prepared slot.
        slot: String,
    },
    /// No key of this kind is prepared.
    #[error("no {0} key is prepared; prepare one first")]
    NothingPrepared(KeyKind),
    /// The prepared key has not reached every agent yet.
    #[error(
        "the prepared {kind} key was published {published_secs}s ago, less than the \
         propagation delay ({delay_secs}s): agents may not trust it yet; wait, or force it"
    )]
    NotPropagated {
        /// X.509 or JWT.
        kind: KeyKind,
        /// Seconds since it was published.
        published_secs: u64,
        /// `[rotation] propagation_delay`.
        delay_secs: u64,
    },
    /// This CA does not make its own X.509 keys.
    #[error("{0}")]
    NotSelfManaged(String),
    /// No slot has this key ID.
    #[error("no key slot has the key ID {0:?}; `meshid ca rotation show` lists them")]
    UnknownKey(String),
    /// The key still signs, or is about to.
    #[error("the key {key_id} is {state}: activate another key first")]
    InUse {
        /// The key.
        key_id: String,
        /// `prepared` or `active`.
        state: &'static str,
    },
    /// Unexpired SVIDs depend on the key.
    #[error(
        "{count} unexpired SVIDs were signed by the key {key_id} (all of them have expired by \
         {until}); they stop verifying once it leaves the bundle: wait, or force it"
    )]
    LiveSvids {
        /// The key.
        key_id: String,
        /// How many.
        count: u64,
        /// RFC 3339 time by which all of them have expired (or `unknown`).
        until: String,
    },
    /// The step could not run under the rotation lease (another replica
    /// holds it, or it was lost).
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// A key or certificate could not be made or read.
    #[error("{0}")]
    Material(String),
    /// The store failed (the step may be retried).
    #[error(transparent)]
    Store(#[from] StoreError),
}
