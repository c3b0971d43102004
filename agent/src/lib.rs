//! meshid agent.
#![forbid(unsafe_code)]

pub mod attestor;
pub mod cache;

pub use attestor::{AttestError, PeerInfo, ProcessIdentity, UnixAttestor, WorkloadAttestor};
pub mod attest;
pub mod backoff;
pub mod config;
pub mod manager;
pub mod metrics;
pub mod node_client;
pub mod run;
pub mod sds;
pub mod workload_api;
