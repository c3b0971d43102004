//! Everything that talks to the database, for the driver `Db` of the
//! backend module that mounts this file (`sqlite.rs`, `postgres.rs`).

use super::{BEGIN, Db, FENCED, LOCKED, SNAPSHOT};
use crate::store::sql::SqlStore;

mod agents;
mod attestation_tokens;
mod audit;
mod audited;
mod bindings;
mod bundles;
mod decode;
mod entries;
mod entry_lists;
mod key_slots;
mod leases;
mod selectors;
mod store_impl;
mod tenants;
mod tokens;

/// A connection of this backend (pooled, or inside a transaction).
type Conn = <Db as sqlx::Database>::Connection;
/// The store of this backend.
type This = SqlStore<Db>;
