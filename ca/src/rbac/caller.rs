//! The subjects of one admin request.

use meshid_identity::SpiffeId;
use tonic::Request;
use tonic::Status;
use tonic::transport::server::UdsConnectInfo;

use super::{KubeAuthenticator, KubeUser};

/// Longest bearer token accepted (a Kubernetes service-account token is
/// about 1 KiB).
pub const MAX_BEARER_TOKEN: usize = 16 * 1024;

/// Who is calling: the subjects taken from the connection and the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The Unix peer of the admin socket (uid, gid).
    pub peer: Option<(u32, u32)>,
    /// The SPIFFE ID of the mTLS client SVID.
    pub spiffe_id: Option<SpiffeId>,
    /// The Kubernetes user of the bearer token.
    pub kube: Option<KubeUser>,
    subjects: Vec<String>,
}

// === impl Caller ===

impl Caller {
    /// A caller from its parts; the subjects are derived in the order of
    /// [`Caller::actor`].
    pub fn new(
        peer: Option<(u32, u32)>,
        spiffe_id: Option<SpiffeId>,
        kube: Option<KubeUser>,
    ) -> Self {
        let mut subjects = Vec::new();
        if let Some(id) = &spiffe_id {
            subjects.push(id.to_string());
        }
        if let Some(user) = &kube {
            subjects.push(format!("k8s-user:{}", user.name));
            subjects.extend(user.groups.iter().map(|g| format!("k8s-group:{g}")));
        }
        if let Some((uid, gid)) = peer {
            subjects.push(format!("uid:{uid}"));
            subjects.push(format!("gid:{gid}"));
        }
        Self {
            peer,
            spiffe_id,
            kube,
            subjects,
        }
    }

    /// Identifies the caller of `req`: the socket's peer credentials, else
    /// the verified client SVID of the TLS connection; plus the Kubernetes
    /// user of an `authorization: Bearer` token, reviewed by `kube`.
    /// `Unauthenticated` when none can be found or the token is refused.
    pub async fn identify<T>(
        req: &Request<T>,
        kube: Option<&dyn KubeAuthenticator>,
    ) -> Result<Self, Status> {
        let peer = req
            .extensions()
            .get::<UdsConnectInfo>()
            .map(|info| {
                info.peer_cred.map(|c| (c.uid(), c.gid())).ok_or_else(|| {
                    Status::unauthenticated(
                        "the admin socket could not read the caller's peer credentials",
                    )
                })
            })
            .transpose()?;
        let spiffe_id = match peer {
            Some(_) => None,
            None => Some(crate::node::caller_id(req)?),
        };
        let user = match bearer(req)? {
            None => None,
            Some(token) => {
                let Some(kube) = kube else {
                    return Err(Status::unauthenticated(
                        "this CA does not check Kubernetes bearer tokens: configure \
                         [rbac.kubernetes], or call without --token-file",
                    ));
                };
                Some(kube.review(token).await?)
            }
        };
        Ok(Self::new(peer, spiffe_id, user))
    }

    /// The subjects, most specific first: SPIFFE ID, Kubernetes user and
    /// groups, uid, gid.
    pub fn subjects(&self) -> &[String] {
        &self.subjects
    }

    /// The subject the audit log records and denials name: the first of
    /// SPIFFE ID, Kubernetes user, uid.
    pub fn actor(&self) -> &str {
        self.subjects.first().map_or("unknown", String::as_str)
    }
}

/// The bearer token of `authorization`, if any; malformed or oversized →
/// `Unauthenticated`.
fn bearer<T>(req: &Request<T>) -> Result<Option<&str>, Status> {
    let Some(value) = req.metadata().get("authorization") else {
        return Ok(None);
    };
    if value.len() > MAX_BEARER_TOKEN + 7 {
        return Err(Status::unauthenticated(format!(
            "the bearer token is longer than {MAX_BEARER_TOKEN} bytes"
        )));
    }
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Status::unauthenticated(
                "authorization must be `Bearer <token>` with a Kubernetes token",
            )
        })?;
    Ok(Some(token))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn actor_is_the_most_specific_subject() {
        let c = Caller::new(Some((1001, 100)), None, None);
        assert_eq!(c.subjects(), ["uid:1001", "gid:100"]);
        assert_eq!(c.actor(), "uid:1001");
        let user = KubeUser {
            name: "alice".into(),
            groups: vec!["devs".into()],
        };
        let c = Caller::new(Some((0, 0)), None, Some(user));
        assert_eq!(c.actor(), "k8s-user:alice");
        assert_eq!(c.subjects()[1], "k8s-group:devs");
        let id: SpiffeId = "spiffe://example.org/ops".parse().unwrap();
        assert_eq!(
            Caller::new(None, Some(id), None).actor(),
            "spiffe://example.org/ops"
        );
    }

    #[test]
    fn bearer_tokens_are_bounded_and_well_formed() {
        let mut req = Request::new(());
        assert_eq!(bearer(&req).unwrap(), None);
        req.metadata_mut()
            .insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&req).unwrap(), Some("abc"));
        req.metadata_mut()
            .insert("authorization", "Basic abc".parse().unwrap());
        assert!(bearer(&req).is_err());
        let long = format!("Bearer {}", "a".repeat(MAX_BEARER_TOKEN + 1));
        req.metadata_mut()
            .insert("authorization", long.parse().unwrap());
        assert!(bearer(&req).is_err());
    }
}
