//! Validation by the cluster: a TokenReview (`POST
//! /apis/authentication.k8s.io/v1/tokenreviews`) for the configured
//! audience, then who the cluster says the token belongs to.

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::Api;
use kube::api::PostParams;

use super::TokenIdentity;
use super::config::{Cluster, bounded};
use crate::node_attestor::AttestError;

/// The `user.extra` keys of a pod-bound service-account token.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// The bound pod's uid.
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// The bound node's name (Kubernetes 1.30+).
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
/// The bound node's uid (Kubernetes 1.30+).
pub const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";
/// Longest cluster message quoted in an error.
const MAX_QUOTED: usize = 512;

/// Asks `cluster` to review `token` for its audience; `expires_at` is the
/// token's `exp` (read before, unverified: the review verifies it).
pub async fn review(
    cluster: &Cluster,
    token: &str,
    expires_at: SystemTime,
) -> Result<TokenIdentity, AttestError> {
    let audience = &cluster.settings.audience;
    let request = TokenReview {
        metadata: Default::default(),
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: Some(vec![audience.clone()]),
        },
        status: None,
    };
    let api = Api::<TokenReview>::all(cluster.client().await?.clone());
    let answer = bounded(
        &cluster.name,
        "the TokenReview",
        api.create(&PostParams::default(), &request),
    )
    .await?;
    identity(answer.status.unwrap_or_default(), audience, expires_at)
}

/// Who an answered review says the token belongs to.
pub fn identity(
    status: TokenReviewStatus,
    audience: &str,
    expires_at: SystemTime,
) -> Result<TokenIdentity, AttestError> {
    if status.authenticated != Some(true) {
        let why: String = status
            .error
            .as_deref()
            .unwrap_or("no reason given")
            .chars()
            .take(MAX_QUOTED)
            .collect();
        return Err(AttestError::Refused(format!(
            "the cluster's TokenReview refused the token: {why}"
        )));
    }
    if !status
        .audiences
        .as_ref()
        .is_some_and(|a| a.iter().any(|a| a == audience))
    {
        return Err(AttestError::Refused(format!(
            "token is not for audience {audience} (the cluster's TokenReview did not confirm it)"
        )));
    }
    let user = status.user.unwrap_or_default();
    let username = user.username.unwrap_or_default();
    let (namespace, service_account) = service_account(&username)?;
    let extra = user.extra.unwrap_or_default();
    let pod_name = one(&extra, EXTRA_POD_NAME)?;
    let pod_uid = one(&extra, EXTRA_POD_UID)?;
    let (Some(pod_name), Some(pod_uid)) = (pod_name, pod_uid) else {
        return Err(AttestError::Refused(
            "token is not bound to a pod; mount a projected service-account token in the agent \
             pod"
            .into(),
        ));
    };
    Ok(TokenIdentity {
        namespace,
        service_account,
        pod_name,
        pod_uid,
        node_name: one(&extra, EXTRA_NODE_NAME)?,
        node_uid: one(&extra, EXTRA_NODE_UID)?,
        expires_at,
    })
}

/// `system:serviceaccount:<ns>:<sa>` → `(ns, sa)`.
pub fn service_account(username: &str) -> Result<(String, String), AttestError> {
    username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .filter(|(ns, sa)| !ns.is_empty() && !sa.is_empty() && !sa.contains(':'))
        .map(|(ns, sa)| (ns.to_owned(), sa.to_owned()))
        .ok_or_else(|| {
            AttestError::Refused(format!(
                "token is not a service-account token (user {:?})",
                username.chars().take(MAX_QUOTED).collect::<String>()
            ))
        })
}

/// The single value of `key` in `extra`, if any; several is refused.
fn one(extra: &BTreeMap<String, Vec<String>>, key: &str) -> Result<Option<String>, AttestError> {
    match extra.get(key).map(Vec::as_slice) {
        None | Some([]) => Ok(None),
        Some([v]) if !v.is_empty() => Ok(Some(v.clone())),
        Some(_) => Err(AttestError::Refused(format!(
            "the cluster's TokenReview gave no single value for {key}"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use k8s_openapi::api::authentication::v1::UserInfo;

    use super::*;

    fn status(extra: &[(&str, &str)]) -> TokenReviewStatus {
        TokenReviewStatus {
            audiences: Some(vec!["meshid-ca".into()]),
            authenticated: Some(true),
            error: None,
            user: Some(UserInfo {
                username: Some("system:serviceaccount:meshid-system:meshid-agent".into()),
                extra: Some(
                    extra
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                        .collect(),
                ),
                ..Default::default()
            }),
        }
    }

    fn refused(r: Result<TokenIdentity, AttestError>) -> String {
        match r {
            Err(AttestError::Refused(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_review_names_the_bound_pod_and_node() {
        let now = SystemTime::now();
        let s = status(&[
            (EXTRA_POD_NAME, "agent-1"),
            (EXTRA_POD_UID, "u-1"),
            (EXTRA_NODE_NAME, "node-a"),
        ]);
        let id = identity(s, "meshid-ca", now).unwrap();
        assert_eq!(id.namespace, "meshid-system");
        assert_eq!(id.service_account, "meshid-agent");
        assert_eq!(id.pod_name, "agent-1");
        assert_eq!(id.node_name.as_deref(), Some("node-a"));
        assert_eq!(id.node_uid, None);

        let unbound = refused(identity(status(&[]), "meshid-ca", now));
        assert!(
            unbound.starts_with("token is not bound to a pod"),
            "{unbound}"
        );
        let other = refused(identity(status(&[]), "other", now));
        assert!(
            other.starts_with("token is not for audience other"),
            "{other}"
        );
        let mut no = status(&[]);
        no.authenticated = Some(false);
        no.error = Some("token has expired".into());
        assert_eq!(
            refused(identity(no, "meshid-ca", now)),
            "the cluster's TokenReview refused the token: token has expired"
        );
        for bad in [
            "alice",
            "system:serviceaccount:ns",
            "system:serviceaccount::sa",
        ] {
            assert!(service_account(bad).is_err(), "{bad}");
        }
    }
}
