//! `meshid k8s controller` end to end: the real binary against a real CA
//! and the fake Kubernetes API server (tests/src/kube), which speaks the
//! real wire format (list + watch, status, patches, Leases).
//!
//! - [`convergence`]: 500 pods created then deleted, the controller
//!   SIGKILLed midway and restarted: the owned entries are exactly the
//!   pods', never a duplicate;
//! - [`leader`]: two controllers, only the Lease holder writes; the other
//!   takes over after the holder is killed;
//! - [`publish`]: a template changed (entries and status follow), trust
//!   bundle ConfigMaps in every namespace (and after `meshid ca rotation
//!   prepare`), Istio policies as a policy ConfigMap `meshid policy check`
//!   accepts, the webhook's caBundle, and the request log against
//!   `meshid_k8s::rbac::CONTROLLER` both ways;
//! - [`workload`]: a real agent attested with a join token for the node
//!   alias serves the controller's entry to a process of this test.
#![allow(clippy::unwrap_used)]

mod convergence;
mod leader;
mod publish;
mod support;
mod workload;
