//! meshid-ca: the certificate authority. It attests node agents, signs
//! X.509-SVIDs and JWT-SVIDs for the registration entries they may hold,
//! serves the trust bundle, and keeps its state in SQLite or PostgreSQL.
//!
//! Modules, from the process down:
//!
//! - [`server`]: the CA assembled: authority, store, node API over TLS, admin
//!   API on a Unix socket, ops endpoint; graceful shutdown.
//! - [`config`]: the CA's TOML configuration, typed and checked at load.
//! - [`node`]: the node API (`meshid.ca.v1.Node`): what agents call.
//! - [`admin`]: the admin API (`meshid.ca.v1.Admin`): what operators call.
//! - [`rbac`]: who calls the admin API and which roles they hold.
//! - [`tenancy`]: tenants (scopes of SPIFFE ID prefixes) and what their
//!   entries and tokens may name.
//! - [`audit`]: the audit log checked ([`audit::verify`]), its head signed
//!   ([`audit::Checkpointer`]) and exported as JSON lines.
//! - [`node_attestor`]: node attestation ([`node_attestor::NodeAttestor`]):
//!   evidence in, agent ID and selectors out (join tokens today).
//! - [`authority`]: the signing authority: issuance policy, SVID signing;
//!   [`authority::CurrentAuthority`], the one every reader uses, swappable.
//! - [`reload`]: hot reload of an intermediate from disk: watched,
//!   validated as at start-up, swapped in only when valid.
//! - [`rotation`]: the key journal and live rotation of the CA's X.509
//!   and JWT keys (prepare → activate → retire), shared by CA replicas.
//! - [`upstream`]: where the CA's own certificate comes from
//!   ([`upstream::UpstreamAuthority`]: self-signed or from disk).
//! - [`csr`]: the intermediate CA's certificate signing request for an
//!   enterprise root (`meshid ca csr`).
//! - [`keymanager`]: where the CA's private keys live
//!   ([`keymanager::KeyManager`]: memory, disk, or the X.509 CA key on a
//!   PKCS#11 token; certificates are signed through a
//!   [`keymanager::CaKey`]).
//! - [`store`]: durable state ([`Store`]) over SQLite or PostgreSQL, and the
//!   metered wrapper.
//! - [`metrics`]: the CA's Prometheus metrics.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod authority;
pub mod config;
pub mod csr;
pub mod keymanager;
pub mod metrics;
pub mod node;
pub mod node_attestor;
pub mod rbac;
pub mod reload;
pub mod rotation;
pub mod server;
pub mod store;
pub mod tenancy;
pub mod upstream;

pub use store::{Store, StoreError};
