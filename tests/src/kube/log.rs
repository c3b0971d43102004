//! The request log: who asked for what, in Kubernetes RBAC terms.

/// One resource request as the server saw it (discovery requests are not
/// logged: every authenticated client may read discovery).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The bearer token the client sent.
    pub token: String,
    /// The Kubernetes verb: `get`, `list`, `watch`, `create`, `update`,
    /// `patch`, `delete` (or `deletecollection`, which is refused).
    pub verb: &'static str,
    /// The API group (`""` for the core group).
    pub group: String,
    /// The resource, with `/<subresource>` when it is one
    /// (`clusteridentitytemplates/status`).
    pub resource: String,
    /// The namespace in the path (`""` for cluster-scoped requests and
    /// requests across all namespaces).
    pub namespace: String,
    /// The object's name (`""` for collections).
    pub name: String,
}

/// Requests kept; older ones are dropped.
pub const MAX_LOG: usize = 200_000;
