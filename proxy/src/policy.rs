//! Zero-trust authorization: Istio-style ALLOW / DENY / AUDIT policies over
//! SPIFFE identities, ports and HTTP attributes.
//!
//! ```
//! use meshid_identity::SpiffeId;
//! use meshid_proxy::policy::{PolicySet, Request};
//!
//! let yaml = r#"
//! policies:
//!   - name: sleep-reads
//!     action: ALLOW
//!     rules:
//!       - from: [{ source: { principals: ["cluster.local/ns/default/sa/sleep"] } }]
//!         to: [{ operation: { methods: ["GET"], paths: ["/api/*"] } }]
//! "#;
//! let (set, _warnings) = PolicySet::from_yaml(yaml).unwrap();
//! let sleep = SpiffeId::parse("spiffe://cluster.local/ns/default/sa/sleep").unwrap();
//! assert!(set.evaluate(&Request::http(Some(&sleep), 8080, "GET", "/api/x")).allowed);
//! assert!(!set.evaluate(&Request::http(Some(&sleep), 8080, "POST", "/api/x")).allowed);
//! ```
//!
//! A policy with `selector: { matchLabels: {...} }` applies only to
//! workloads with those labels ([`PolicyDocument::for_workload`]; the
//! proxy reads them from its `pod_labels_file`).
//!
//! `peerAuthentication:` (Istio's PeerAuthentication) sets, per inbound
//! application port, whether clients must use mTLS ([`MtlsMode`]; see
//! [`PeerAuthentication`] for the lookup order).
//!
//! Order of evaluation: any matching DENY denies; else with no ALLOW policy
//! everything is allowed; else a matching ALLOW allows; else deny. AUDIT
//! policies are reported in [`Decision::audited`] and never decide.

mod compile;
mod document;
mod error;
mod eval;
mod explain;
mod labels;
mod load;
mod matcher;
mod model;
mod pattern;
mod peer_auth;
mod request;
mod set;
mod watch;

pub use compile::MAX_RULES;
pub use document::PolicyDocument;
pub use error::{PolicyError, Warning};
pub use eval::{Decision, Reason};
pub use explain::explain;
pub use labels::{Labels, MAX_LABELS};
pub use load::MAX_POLICY_FILE_SIZE;
pub use pattern::{Pattern, PatternError};
pub use peer_auth::{MtlsDecision, MtlsMode, PeerAuthentication};
pub use request::{HeaderSource, NoHeaders, Protocol, Request};
pub use set::{Action, Policy, PolicySet};
pub use watch::PolicyWatcher;
