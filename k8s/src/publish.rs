//! What the controller publishes into the cluster besides entries: the
//! trust bundle (a ConfigMap per namespace and the injector webhook's
//! `caBundle`) and each namespace's proxy policy ConfigMap.

pub mod bundle;
pub mod policy;
pub mod webhook;

/// The label on everything the controller creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "meshid-controller");
