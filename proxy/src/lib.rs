//! meshid proxy: a mTLS sidecar that presents the workload's SVID, verifies
//! peers' SPIFFE IDs and authorizes every connection or request by policy.
//!
//! The modules form layers; a module imports only from the layers below
//! it, so the crate reads top to bottom:
//!
//! ```text
//! run                     wiring: config → identity → TLS store → listeners, drain
//!  │   (run/workers: data-plane threads, run/listen: sockets)
//! inbound, outbound       listeners: accept, connection cap, mTLS handshake
//!  │
//! tcp, http               protocols: opaque TCP; HTTP/1.1 + HTTP/2
//!  │   (http: serve → authorize → trace → forward → record)
//! context, authz,         what the protocols share: Shared state and Peer,
//! connect, drain, idle,   the verdict, the upstream connector, drain, idle
//! limit                   detection, the connection cap
//!  │
//! policy, tls, identity,  foundations: policy engine, TLS configs, SVID
//! trace, metrics,         sources, trace context + span export, Prometheus,
//! access_log, config      access log, typed config
//! ```
#![forbid(unsafe_code)]

mod authz;
mod connect;
mod context;
mod drain;
mod http;
mod idle;
mod inbound;
mod limit;
mod outbound;
mod tcp;

pub mod access_log;
pub mod config;
pub mod identity;
pub mod metrics;
pub mod policy;
pub mod run;
pub mod tls;
pub mod trace;

pub use authz::Verdict;
pub use config::ProxyConfig;
pub use context::{Peer, Shared};
pub use drain::{Drain, DrainGuard, DrainHandle};
pub use limit::{ConnLimit, ConnSlot};
pub use policy::{Decision, PolicySet, PolicyWatcher};
pub use run::{Running, run, start};
