//! Who calls the admin API and what they may do.
//!
//! - `caller` ([`Caller`]): the subjects of one request: the admin socket's
//!   peer credentials (`uid:<n>`, `gid:<n>`), the SPIFFE ID of an mTLS
//!   client SVID, and a Kubernetes user and groups (`k8s-user:<name>`,
//!   `k8s-group:<name>`) from an `authorization: Bearer` token
//!   ([`KubeAuthenticator`], `kube_auth`; with kube-rs:
//!   [`KubernetesAuthenticator`], `kubernetes`).
//! - `authorizer` ([`Authorizer`], [`Grants`]): the roles those subjects
//!   hold: bindings in the store (cached, re-read after every bind and
//!   unbind and every `[ha] refresh_interval`), bindings from the config,
//!   and implicit ones (uid 0 and the CA's own uid on the socket,
//!   `admin_ids`, and entries with `admin = true`); for a Kubernetes user
//!   also what SubjectAccessReview grants.
//! - `subject`: the subject syntax, and the one denial message.
//!
//! Roles nest: `cluster-admin` ⊇ `admin` ⊇ `operator` ⊇ `viewer`; all but
//! `cluster-admin` hold on one tenant. Platform objects (tenant `""`) are
//! for `cluster-admin` only.

mod authorizer;
mod caller;
pub mod kube_auth;
pub mod kubernetes;
mod subject;

pub use crate::store::{Role, RoleBinding};
pub use authorizer::{Authorizer, AuthorizerParts, Grants, Held, Scope, Source};
pub use caller::{Caller, MAX_BEARER_TOKEN};
pub use kube_auth::{KubeAuthenticator, KubeUser};
pub use kubernetes::KubernetesAuthenticator;
pub use subject::{MAX_SUBJECT_LEN, check_subject, denial};
