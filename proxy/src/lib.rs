//! meshid proxy.
#![forbid(unsafe_code)]

pub mod policy;

pub use policy::{Decision, PolicySet, PolicyWatcher};

pub mod access_log;
pub mod config;
pub mod http;
pub mod identity;
pub mod inbound;
pub mod metrics;
pub mod ops;
pub mod outbound;
pub mod run;
pub mod tcp;
pub mod tls;
pub mod trace;

pub use config::ProxyConfig;
pub use run::{run, start};
