//! Validation without the cluster: the token's signature is checked
//! against the service-account issuer's keys, found through OIDC discovery
//! (`<issuer>/.well-known/openid-configuration` → `jwks_uri`), cached and
//! fetched again every `oidc_jwks_refresh`, or at once (at most every 10 s)
//! for a `kid` the cache does not hold. RS256 and ES256 only; `iss`, `aud`,
//! `exp` and `nbf` are checked here with 30 s of leeway.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::payload::{Audiences, LEEWAY, show, unix_time};
use super::token_review::service_account;
use super::{TokenIdentity, https};
use crate::node_attestor::AttestError;

/// The shortest time between two fetches forced by an unknown `kid`.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// Most keys kept from one JWKS.
const MAX_KEYS: usize = 64;

/// The refusal of a token whose signature does not verify.
const FORGED: &str = "token signature does not verify against the issuer's keys";

/// The discovery document (the fields used).
#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// `kubernetes.io.<object>`: a name and uid.
#[derive(Debug, Deserialize)]
struct Bound {
    name: String,
    uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Deserialize)]
struct K8sClaim {
    namespace: String,
    serviceaccount: Bound,
    #[serde(default)]
    pod: Option<Bound>,
    #[serde(default)]
    node: Option<Bound>,
}

/// The claims of a service-account token (the ones used).
#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Audiences,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(rename = "kubernetes.io")]
    k8s: K8sClaim,
}

/// The cached keys.
#[derive(Debug, Default)]
struct Cache {
    keys: Option<(JwkSet, Instant)>,
    last_forced: Option<Instant>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Verifies one cluster's tokens against its issuer's keys.
#[derive(Debug)]
pub struct OidcVerifier {
    cluster: String,
    issuer: String,
    ca_file: Option<PathBuf>,
    refresh: Duration,
    cache: Mutex<Cache>,
}

impl OidcVerifier {
    /// The verifier of `cluster`'s issuer (`https://…`, checked at load).
    pub fn new(cluster: &str, issuer: &str, ca_file: Option<PathBuf>, refresh: Duration) -> Self {
        Self {
            cluster: cluster.to_owned(),
            issuer: issuer.to_owned(),
            ca_file,
            refresh,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Verifies `token` for `audience` at `now` and says whom it names.
    pub async fn verify(
        &self,
        token: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<TokenIdentity, AttestError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AttestError::Malformed("k8s_psat token header is not a JWT header"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(AttestError::Refused(format!(
                "token is signed with {:?}; only RS256 and ES256 are accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| AttestError::Refused("token header names no key (kid)".into()))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
            Ok(data) => data.claims,
            Err(e) => {
                return Err(match e.kind() {
                    ErrorKind::Json(_) => AttestError::Refused(format!(
                        "token claims are not a service-account token's: {e}"
                    )),
                    _ => AttestError::Refused(FORGED.into()),
                });
            }
        };
        self.check(claims, audience, now)
    }

    fn check(
        &self,
        c: Claims,
        audience: &str,
        now: SystemTime,
    ) -> Result<TokenIdentity, AttestError> {
        if c.iss != self.issuer {
            return Err(AttestError::Refused(format!(
                "token is issued by {:?}, not by cluster {}'s issuer {}",
                c.iss.chars().take(200).collect::<String>(),
                self.cluster,
                self.issuer
            )));
        }
        if !c.aud.contains(audience) {
            return Err(AttestError::Refused(format!(
                "token is not for audience {audience} (its audiences: {:?})",
                c.aud.list()
            )));
        }
        let exp = unix_time(c.exp);
        if exp + LEEWAY <= now {
            return Err(AttestError::Refused(format!(
                "token expired at {}; the kubelet rotates projected tokens, retry with the new one",
                show(exp)
            )));
        }
        if let Some(nbf) = c.nbf.map(unix_time)
            && nbf > now + LEEWAY
        {
            return Err(AttestError::Refused(format!(
                "token is not valid before {}",
                show(nbf)
            )));
        }
        let (namespace, service_account) = service_account(&c.sub)?;
        if namespace != c.k8s.namespace || service_account != c.k8s.serviceaccount.name {
            return Err(AttestError::Refused(
                "token's sub does not match its kubernetes.io claims".into(),
            ));
        }
        let Some(pod) = c.k8s.pod else {
            return Err(AttestError::Refused(
                "token is not bound to a pod; mount a projected service-account token in the \
                 agent pod"
                    .into(),
            ));
        };
        Ok(TokenIdentity {
            namespace,
            service_account,
            pod_name: pod.name,
            pod_uid: pod.uid,
            node_name: c.k8s.node.as_ref().map(|n| n.name.clone()),
            node_uid: c.k8s.node.map(|n| n.uid),
            expires_at: exp,
        })
    }

    /// The key `kid`, from the cache if fresh, else fetched.
    async fn key(&self, kid: &str) -> Result<DecodingKey, AttestError> {
        let mut cache = self.cache.lock().await;
        let fresh = cache
            .keys
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < self.refresh);
        if !fresh {
            // Stale keys still verify while the issuer is unreachable.
            if let Err(e) = self.fetch(&mut cache).await {
                if cache.keys.is_none() {
                    return Err(e);
                }
                tracing::warn!(error = %e, "cannot refresh the issuer's keys; using the cached ones");
            }
        }
        if find(&cache, kid).is_none()
            && fresh
            && cache.last_forced.is_none_or(|t| t.elapsed() >= MIN_REFETCH)
        {
            cache.last_forced = Some(Instant::now());
            self.fetch(&mut cache).await?;
        }
        let jwk = find(&cache, kid).ok_or_else(|| {
            AttestError::Refused(format!(
                "token key {:?} is not among the issuer's keys; {FORGED}",
                kid.chars().take(100).collect::<String>()
            ))
        })?;
        DecodingKey::from_jwk(jwk).map_err(|e| {
            AttestError::Unavailable(format!(
                "cluster {}: the issuer's key {kid:?} is not usable: {e}",
                self.cluster
            ))
        })
    }

    /// Fetches discovery, then the key set, into `cache`.
    async fn fetch(&self, cache: &mut Cache) -> Result<(), AttestError> {
        let unavailable = |what: String| {
            AttestError::Unavailable(format!(
                "cluster {}: the issuer {}: {what}",
                self.cluster, self.issuer
            ))
        };
        let tls = match &cache.tls {
            Some(t) => Arc::clone(t),
            None => {
                let t = https::tls_config(self.ca_file.as_deref()).map_err(unavailable)?;
                cache.tls = Some(Arc::clone(&t));
                t
            }
        };
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let uri: http::Uri = url.parse().map_err(|e| unavailable(format!("{e}")))?;
        let body = https::get(&tls, &uri).await.map_err(unavailable)?;
        let discovery: Discovery = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("discovery document is not usable: {e}")))?;
        if discovery.issuer != self.issuer {
            return Err(unavailable(format!(
                "discovery names the issuer {:?}; oidc_issuer must be exactly that",
                discovery.issuer.chars().take(200).collect::<String>()
            )));
        }
        let jwks_uri: http::Uri = discovery
            .jwks_uri
            .parse()
            .map_err(|e| unavailable(format!("jwks_uri: {e}")))?;
        let body = https::get(&tls, &jwks_uri).await.map_err(unavailable)?;
        let mut set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("JWKS is not usable: {e}")))?;
        set.keys.truncate(MAX_KEYS);
        cache.keys = Some((set, Instant::now()));
        Ok(())
    }
}

fn find<'a>(cache: &'a Cache, kid: &str) -> Option<&'a jsonwebtoken::jwk::Jwk> {
    cache.keys.as_ref().and_then(|(set, _)| set.find(kid))
}
