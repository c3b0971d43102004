//! The seam to Kubernetes for admin callers that present a bearer token:
//! who the token belongs to (TokenReview) and whether Kubernetes RBAC
//! grants them a meshid role on a tenant (SubjectAccessReview). The kube-rs
//! implementation is in `rbac/kubernetes.rs`; tests give a fake.

use std::fmt::Debug;

use async_trait::async_trait;
use tonic::Status;

use crate::store::Role;

/// A Kubernetes user as TokenReview reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeUser {
    /// The user name (`system:serviceaccount:ns:name` for service accounts).
    pub name: String,
    /// The groups the user is in.
    pub groups: Vec<String>,
}

/// Authenticates bearer tokens against a Kubernetes API server and asks it
/// whether a user holds a meshid role.
#[async_trait]
pub trait KubeAuthenticator: Send + Sync + Debug {
    /// The user `token` belongs to; `Unauthenticated` when the API server
    /// rejects it, `Unavailable` when it cannot be asked.
    async fn review(&self, token: &str) -> Result<KubeUser, Status>;
    /// Whether Kubernetes RBAC lets `user` act as `role` on `tenant`
    /// (verb = the role's name on `tenants.meshid.io`, name = the tenant;
    /// `""` for the platform).
    async fn allowed(&self, user: &KubeUser, role: Role, tenant: &str) -> Result<bool, Status>;
}
