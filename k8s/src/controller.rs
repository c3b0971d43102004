//! `meshid k8s controller`: registers every selected pod with the CA
//! (entries owned `k8s/<cluster>`), publishes the trust bundle and each
//! namespace's proxy policy as ConfigMaps, keeps the injector's `caBundle`
//! and the templates' status; only the holder of the leader Lease writes.
//!
//! - [`config`]: `controller.toml`, checked into [`config::Settings`];
//! - `watch`: the reflectors;
//! - [`desired`]: pods × templates → entries (pure);
//! - `entries`: the CA side (list owned, create, update, delete);
//! - `configmaps`, `status`, `ca_bundle`: the cluster side;
//! - `run` ([`run()`]): the process and its reconcile loop.

mod ca_bundle;
pub mod config;
mod configmaps;
pub mod desired;
mod entries;
pub mod metrics;
mod run;
mod status;
mod watch;

pub use run::{RunError, run};
