//! meshid-ca: the certificate authority.
//!
//! - [`store`]: durable state (registration entries, agents, join tokens,
//!   issuance records, bundles, CA key slots) over SQLite or PostgreSQL.
#![forbid(unsafe_code)]

pub mod admin;
pub mod store;

pub use store::{Store, StoreError};
pub mod authority;
pub mod config;
pub mod keymanager;
pub mod metrics;
pub mod node;
pub mod node_attestor;
pub mod server;
pub mod upstream;
