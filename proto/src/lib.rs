//! meshid-proto: wire types and gRPC services.
//!
//! - [`workload`]: the SPIFFE Workload API (`/SpiffeWorkloadAPI/...`),
//!   wire-compatible with every SPIFFE client library.
//! - [`ca`]: the meshid CA's node API (agents) and admin API (operators).
//! - [`envoy`]: Envoy's xDS types (SDS v3), re-exported from `envoy-types`.
//! - [`convert`]: wire bundles as [`meshid_identity::TrustBundle`]s.
#![forbid(unsafe_code)]

/// The SPIFFE Workload API. Its proto has no package, as the spec requires.
#[allow(missing_docs, clippy::all, clippy::pedantic, unreachable_pub)]
pub mod workload {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));
}

/// The meshid CA APIs, `meshid.ca.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic, unreachable_pub)]
pub mod ca {
    include!(concat!(env!("OUT_DIR"), "/meshid.ca.v1.rs"));
}

pub mod convert;

/// Envoy xDS types (SDS v3 lives at `envoy::pb::envoy::service::secret::v3`).
pub use envoy_types as envoy;

/// Largest gRPC message meshid servers and clients accept (4 MiB).
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// The metadata header every Workload API request must carry.
pub const WORKLOAD_HEADER: &str = "workload.spiffe.io";
