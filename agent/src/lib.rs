//! meshid agent.
#![forbid(unsafe_code)]

pub mod attestor;

pub use attestor::{AttestError, PeerInfo, ProcessIdentity, UnixAttestor, WorkloadAttestor};
