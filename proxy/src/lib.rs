//! meshid proxy.
#![forbid(unsafe_code)]

pub mod policy;

pub use policy::{Decision, PolicySet, PolicyWatcher};
