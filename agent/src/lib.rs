//! meshid-agent: the node agent. It attests its node to the CA, attests the
//! workloads that call it, keeps one fresh X.509-SVID per registration entry
//! and serves them over the SPIFFE Workload API and Envoy SDS v3, from its
//! cache while the CA is away.
//!
//! Modules, in the order a request meets them:
//!
//! - [`run`]: the agent process: everything below wired and stopped together.
//! - [`config`]: the agent's TOML configuration, typed and checked at load.
//! - [`workload_api`]: the SPIFFE Workload API on a Unix socket.
//! - [`sds`]: Envoy's Secret Discovery Service on a Unix socket.
//! - [`attestor`]: workload attestation ([`WorkloadAttestor`]): who is the
//!   caller of a socket, as selectors: `unix` (peer credentials, /proc) and,
//!   when configured, `k8s` (the pod from the cgroup and the kubelet).
//! - [`cache`]: the snapshot of identities the manager publishes and the
//!   servers read.
//! - [`manager`]: the SVID manager: sync entries, issue, rotate.
//! - [`reissue`]: which SVIDs the CA's key rotation (or a taint) replaces
//!   early, from the key state every sync carries.
//! - [`attest`]: node attestation (join token or `k8s_psat`): the agent's
//!   own SVID, renewal.
//! - [`node_client`]: the client of the CA's node API ([`node_client::CaClient`]).
//! - `backoff`: the agent's CA retry policy on `meshid_runtime::backoff`.
//! - [`metrics`]: the agent's Prometheus metrics.
#![forbid(unsafe_code)]

pub mod attest;
pub mod attestor;
mod backoff;
pub mod cache;
pub mod config;
pub mod manager;
pub mod metrics;
pub mod node_client;
pub mod reissue;
pub mod run;
pub mod sds;
pub mod workload_api;

pub use attestor::{AttestError, PeerInfo, ProcessIdentity, UnixAttestor, WorkloadAttestor};
