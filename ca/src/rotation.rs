//! Live rotation of the CA's signing keys through a key journal shared by
//! every CA replica (SPIRE's model: each replica has its own X.509 CA and
//! JWT key; all of them are in the one trust bundle).
//!
//! - `schedule`: [`Schedule`], when each step is due.
//! - `journal`: [`Journal`], the slots of every replica and what follows
//!   from them (the bundle, the next [`Step`]).
//! - `material`: the keys behind the slots ([`X509Source`]).
//! - `engine`: [`Engine`]; `adopt`: start-up; `steps`: prepare, activate,
//!   forget; `follow`: the authority follows the journal, the run loop; `manual`: the operator's
//!   commands and new intermediates ([`Engine::offer`]); `alarms`: expiry
//!   metrics and warnings.
//! - `replica`: [`ReplicaId`], this replica's name in the store.
//! - `lease`: [`RotationLease`], one step at a time across replicas.
//! - `refresh`: [`Refresher`], re-reading what other replicas wrote.
//! - `error`: [`RotationError`].

mod adopt;
mod alarms;
mod engine;
mod error;
mod follow;
pub mod journal;
mod lease;
mod manual;
pub mod material;
mod refresh;
mod replica;
mod schedule;
mod steps;

pub use engine::{Engine, EngineParts};
pub use error::RotationError;
pub use journal::{Journal, Step};
pub use lease::{LeaseError, ROTATION_LEASE, RotationLease};
pub use manual::{Offered, SlotView};
pub use material::X509Source;
pub use refresh::{Refresher, SharedState};
pub use replica::{MAX_REPLICA_ID_LEN, REPLICA_ID_FILE, ReplicaId, ReplicaIdError};
pub use schedule::Schedule;
