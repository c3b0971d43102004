//! [`KubernetesAuthenticator`]: the kube-rs [`KubeAuthenticator`] of
//! `[rbac.kubernetes]`. A bearer token is reviewed with a TokenReview (no
//! audience: the API server's own), and a meshid role on a tenant is asked
//! with a SubjectAccessReview of verb `<role>` on `tenants.meshid.io`
//! named after the tenant (no name for the platform), so Kubernetes RBAC
//! can grant meshid roles, which nest as meshid's own (`operator` there
//! also answers for `viewer`):
//!
//! ```yaml
//! rules:
//! - apiGroups: ["meshid.io"]
//!   resources: ["tenants"]
//!   resourceNames: ["payments"]
//!   verbs: ["operator"]
//! ```
//!
//! The client is the CA's one Kubernetes client
//! ([`kube_client`]), built on
//! first use so an unreachable cluster never stops start-up. Bounded: a
//! token of at most [`MAX_BEARER_TOKEN`] bytes, every call within the
//! timeout (5 s), answers cached for 60 s by the SHA-256 of the question
//! (at most 1000 each), a user of at most [`MAX_GROUPS`] groups.

mod cache;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use meshid_runtime::clock::SharedClock;
use tokio::sync::OnceCell;
use tonic::Status;

use super::{KubeAuthenticator, KubeUser, MAX_BEARER_TOKEN, Role};
use crate::config::KubeRbacConfig;
use crate::node_attestor::k8s_psat::{CALL_TIMEOUT, kube_client};

pub use cache::{MAX_ENTRIES, TTL};

/// The API group of the resource meshid roles are verbs on.
pub const API_GROUP: &str = "meshid.io";
/// The resource meshid roles are verbs on (`tenants.meshid.io`).
pub const RESOURCE: &str = "tenants";
/// Most groups a reviewed user may have; more is refused.
pub const MAX_GROUPS: usize = 256;
/// Longest user or group name taken from a review.
pub const MAX_NAME: usize = 512;
/// Longest message of the API server quoted in an error.
const MAX_QUOTED: usize = 512;

/// Reviews bearer tokens and asks about meshid roles on one Kubernetes
/// API server.
pub struct KubernetesAuthenticator {
    kubeconfig: Option<PathBuf>,
    client: OnceCell<Client>,
    timeout: Duration,
    /// Token hash → the review's user, or why it was refused.
    reviews: cache::Cache<Result<KubeUser, String>>,
    /// (user, groups, role, tenant) hash → allowed.
    decisions: cache::Cache<bool>,
}

impl fmt::Debug for KubernetesAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubernetesAuthenticator")
            .field("kubeconfig", &self.kubeconfig)
            .field("client_built", &self.client.initialized())
            .field("timeout", &self.timeout)
            .field("cached_reviews", &self.reviews.len())
            .field("cached_decisions", &self.decisions.len())
            .finish()
    }
}

// === impl KubernetesAuthenticator ===

impl KubernetesAuthenticator {
    /// Talks to the cluster of `kubeconfig`, or the one the CA runs in when
    /// `None`; answers expire by the system clock.
    pub fn new(kubeconfig: Option<PathBuf>) -> Self {
        Self::with_clock(kubeconfig, meshid_runtime::clock::system())
    }

    /// For `[rbac.kubernetes]`.
    pub fn from_config(cfg: &KubeRbacConfig) -> Self {
        Self::new(cfg.kubeconfig.clone())
    }

    /// [`new`](Self::new) with cached answers expiring by `clock`.
    pub fn with_clock(kubeconfig: Option<PathBuf>, clock: SharedClock) -> Self {
        Self {
            kubeconfig,
            client: OnceCell::new(),
            timeout: CALL_TIMEOUT,
            reviews: cache::Cache::new(clock.clone(), TTL),
            decisions: cache::Cache::new(clock, TTL),
        }
    }

    /// Bounds every call by `timeout` instead of 5 s (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The client, built on first use (within the timeout); a failure is
    /// tried again at the next call.
    async fn client(&self) -> Result<Client, Status> {
        let build = self.client.get_or_try_init(|| async {
            kube_client(self.kubeconfig.as_deref())
                .await
                .map_err(|e| Status::unavailable(format!("[rbac.kubernetes]: {e}")))
        });
        match tokio::time::timeout(self.timeout, build).await {
            Ok(client) => client.cloned(),
            Err(_) => Err(Status::unavailable(format!(
                "[rbac.kubernetes]: the Kubernetes client was not ready within {}",
                meshid_runtime::duration::format(self.timeout)
            ))),
        }
    }

    /// Runs `call` within the timeout; a failure or a late answer is
    /// `Unavailable`, naming `what`.
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, Status> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Status::unavailable(format!(
                "the Kubernetes API server's {what} failed: {}",
                clip(&e.to_string())
            ))),
            Err(_) => Err(Status::unavailable(format!(
                "the Kubernetes API server did not answer the {what} within {}",
                meshid_runtime::duration::format(self.timeout)
            ))),
        }
    }

    /// The TokenReview of `token`: the user, or why the API server refused it.
    async fn token_review(&self, token: &str) -> Result<Result<KubeUser, String>, Status> {
        let request = TokenReview {
            metadata: Default::default(),
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            status: None,
        };
        let api = Api::<TokenReview>::all(self.client().await?);
        let answer = self
            .bounded("TokenReview", api.create(&PostParams::default(), &request))
            .await?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            let why = status.error.as_deref().unwrap_or("no reason given");
            return Ok(Err(format!(
                "the Kubernetes API server refused the bearer token: {}",
                clip(why)
            )));
        }
        let user = status.user.unwrap_or_default();
        Ok(user_of(
            user.username.unwrap_or_default(),
            user.groups.unwrap_or_default(),
        ))
    }

    /// The SubjectAccessReview of `user` acting as `role` on `tenant`.
    async fn access_review(
        &self,
        user: &KubeUser,
        role: Role,
        tenant: &str,
    ) -> Result<bool, Status> {
        let request = SubjectAccessReview {
            metadata: Default::default(),
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                groups: Some(user.groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(API_GROUP.to_owned()),
                    resource: Some(RESOURCE.to_owned()),
                    name: (!tenant.is_empty()).then(|| tenant.to_owned()),
                    verb: Some(role.as_str().to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            status: None,
        };
        let api = Api::<SubjectAccessReview>::all(self.client().await?);
        let answer = self
            .bounded(
                "SubjectAccessReview",
                api.create(&PostParams::default(), &request),
            )
            .await?;
        let status = answer.status.unwrap_or_default();
        if let Some(e) = status.evaluation_error.as_deref().filter(|e| !e.is_empty()) {
            tracing::warn!(
                user = %user.name,
                role = role.as_str(),
                tenant,
                error = clip(e),
                "the Kubernetes SubjectAccessReview reported an evaluation error"
            );
        }
        // `denied` only makes an explicit no; anything but `allowed` is no.
        Ok(status.allowed && status.denied != Some(true))
    }

    /// One SubjectAccessReview question, answered from the cache when asked
    /// within its lifetime.
    async fn decide(&self, user: &KubeUser, role: Role, tenant: &str) -> Result<bool, Status> {
        let mut parts = vec!["access", role.as_str(), tenant, user.name.as_str()];
        parts.extend(user.groups.iter().map(String::as_str));
        let key = cache::key(&parts);
        if let Some(allowed) = self.decisions.get(&key) {
            return Ok(allowed);
        }
        let allowed = self.access_review(user, role, tenant).await?;
        self.decisions.put(key, allowed);
        Ok(allowed)
    }
}

#[async_trait]
impl KubeAuthenticator for KubernetesAuthenticator {
    async fn review(&self, token: &str) -> Result<KubeUser, Status> {
        if token.is_empty() || token.len() > MAX_BEARER_TOKEN {
            return Err(Status::unauthenticated(format!(
                "the bearer token must be 1-{MAX_BEARER_TOKEN} bytes"
            )));
        }
        let key = cache::key(&["token", token]);
        let answer = match self.reviews.get(&key) {
            Some(answer) => answer,
            None => {
                let answer = self.token_review(token).await?;
                self.reviews.put(key, answer.clone());
                answer
            }
        };
        answer.map_err(Status::unauthenticated)
    }

    /// Roles nest as meshid's do: `operator` granted in Kubernetes RBAC
    /// also answers for `viewer` on that tenant (each role from `role` up
    /// to `admin` is asked, weakest first, until one is allowed); the
    /// platform (`""`) and `cluster-admin` are asked as they are.
    async fn allowed(&self, user: &KubeUser, role: Role, tenant: &str) -> Result<bool, Status> {
        if tenant.is_empty() || role == Role::ClusterAdmin {
            return self.decide(user, role, tenant).await;
        }
        for r in Role::ALL {
            if r >= role && r != Role::ClusterAdmin && self.decide(user, r, tenant).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The user a review named, within bounds.
fn user_of(name: String, groups: Vec<String>) -> Result<KubeUser, String> {
    let bad = |s: &str| s.is_empty() || s.len() > MAX_NAME || s.chars().any(char::is_control);
    if bad(&name) {
        return Err(format!(
            "the Kubernetes API server named no usable user for the bearer token (a user \
             name is 1-{MAX_NAME} printable characters)"
        ));
    }
    if groups.len() > MAX_GROUPS {
        return Err(format!(
            "the Kubernetes user {name} is in {} groups; at most {MAX_GROUPS} are taken",
            groups.len()
        ));
    }
    if let Some(g) = groups.iter().find(|g| bad(g)) {
        return Err(format!(
            "the Kubernetes user {name} has a group name that is not 1-{MAX_NAME} printable \
             characters: {:?}",
            clip(g)
        ));
    }
    Ok(KubeUser { name, groups })
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_QUOTED).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_review_names_a_bounded_user() {
        let u = user_of("alice".into(), vec!["dev".into()]).unwrap();
        assert_eq!(u.name, "alice");
        assert!(user_of(String::new(), vec![]).is_err());
        assert!(user_of("a\nb".into(), vec![]).is_err());
        assert!(user_of("alice".into(), vec!["g".into(); MAX_GROUPS + 1]).is_err());
        assert!(user_of("alice".into(), vec!["x".repeat(MAX_NAME + 1)]).is_err());
    }
}
