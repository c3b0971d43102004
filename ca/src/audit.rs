//! The audit log seen from outside the store: [`verify`] walks the whole
//! hash chain and its signed checkpoints and names the first bad record;
//! [`Checkpointer`] signs the chain's head with the CA key every
//! `[audit] checkpoint_interval`; [`export_line`] is the JSON-lines form
//! `meshid audit export` prints.
//!
//! The chain itself (records, hashes, the head row, appends in the
//! transaction of each change) is the store's: [`crate::store::record_hash`],
//! [`crate::store::checkpoint_message`].
//!
//! - `chain`: [`ChainCheck`], the pure check of records fed in seq order
//! - `verify`: [`verify`] over a [`Store`](crate::store::Store), in pages
//! - `checkpoint`: signing one checkpoint and checking one against a bundle
//! - `checkpointer`: the CA task that writes them
//! - `export`: [`export_line`] and the wire form of a record

mod chain;
mod checkpoint;
mod checkpointer;
mod export;
mod verify;

pub use chain::{ChainCheck, Problem};
pub use checkpoint::{CheckpointVerdict, check_checkpoint, sign_checkpoint};
pub use checkpointer::{CheckpointError, Checkpointer, Tick};
pub use export::{export_line, export_line_wire, to_wire};
pub use verify::{VerifyReport, stored_bundle, verify};
