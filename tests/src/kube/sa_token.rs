//! Service-account tokens as kube-apiserver signs them: [`SaIssuer`] holds
//! a fresh ES256 or RS256 key (its `kid` the RFC 7638 thumbprint) and mints
//! real signed JWTs from [`SaClaims`] (projected, pod-bound tokens with the
//! `kubernetes.io` claims); [`SaIssuer::jwks_json`] is the key set an OIDC
//! discovery endpoint would publish.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::meta;

/// The issuer (and default audience) of a cluster's service-account tokens.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The signing algorithm of an [`SaIssuer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaKeyAlg {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// RSA-2048 PKCS#1 v1.5 with SHA-256.
    Rs256,
}

impl SaKeyAlg {
    fn algorithm(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
        }
    }
}

/// One key: what signs, what verifies, and its public JWK (without `kid`).
struct Key {
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: serde_json::Map<String, Value>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Key {
    fn generate(alg: SaKeyAlg) -> Self {
        match alg {
            SaKeyAlg::Es256 => Self::es256(),
            SaKeyAlg::Rs256 => Self::rs256(),
        }
    }

    fn es256() -> Self {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        use p256::pkcs8::EncodePrivateKey as _;
        let secret = p256::SecretKey::random(&mut rsa::rand_core::OsRng);
        let pkcs8 = secret.to_pkcs8_der().expect("P-256 key as PKCS#8");
        let point = secret.public_key().to_encoded_point(false);
        let (x, y) = (
            b64(point.x().expect("x coordinate")),
            b64(point.y().expect("y coordinate")),
        );
        let decoding = DecodingKey::from_ec_components(&x, &y).expect("P-256 decoding key");
        let mut jwk = serde_json::Map::new();
        jwk.insert("crv".into(), "P-256".into());
        jwk.insert("kty".into(), "EC".into());
        jwk.insert("x".into(), x.into());
        jwk.insert("y".into(), y.into());
        Self {
            encoding: EncodingKey::from_ec_der(pkcs8.as_bytes()),
            decoding,
            jwk,
        }
    }

    fn rs256() -> Self {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::traits::PublicKeyParts as _;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA-2048 key");
        let pkcs1 = key.to_pkcs1_der().expect("RSA key as PKCS#1");
        let (n, e) = (key.n().to_bytes_be(), key.e().to_bytes_be());
        let mut jwk = serde_json::Map::new();
        jwk.insert("e".into(), b64(&e).into());
        jwk.insert("kty".into(), "RSA".into());
        jwk.insert("n".into(), b64(&n).into());
        Self {
            encoding: EncodingKey::from_rsa_der(pkcs1.as_bytes()),
            decoding: DecodingKey::from_rsa_raw_components(&n, &e),
            jwk,
        }
    }

    /// RFC 7638: SHA-256 over the required members in lexicographic order
    /// (the map is ordered and holds exactly those).
    fn thumbprint(&self) -> String {
        let canonical = serde_json::to_string(&self.jwk).unwrap_or_default();
        b64(&Sha256::digest(canonical.as_bytes()))
    }
}

/// Signs service-account tokens like kube-apiserver; every
/// [`FakeApiServer`](super::FakeApiServer) has one
/// ([`sa_issuer`](super::FakeApiServer::sa_issuer)) and its TokenReview
/// endpoint verifies with it.
pub struct SaIssuer {
    issuer: String,
    alg: SaKeyAlg,
    kid: String,
    key: Key,
}

impl fmt::Debug for SaIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaIssuer")
            .field("issuer", &self.issuer)
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SaIssuer {
    /// A fresh key of `alg` (an RSA key takes a moment) whose `kid` is its
    /// thumbprint, for the issuer `issuer_url` (the `iss` it accepts).
    pub fn new(issuer_url: &str, alg: SaKeyAlg) -> Self {
        let key = Key::generate(alg);
        Self {
            issuer: issuer_url.to_owned(),
            alg,
            kid: key.thumbprint(),
            key,
        }
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key's algorithm.
    pub fn alg(&self) -> SaKeyAlg {
        self.alg
    }

    /// The key ID in every token's header and in the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A signed token carrying `claims` (as kube-apiserver writes them: see
    /// [`SaClaims::to_json`]); header `alg` and `kid`, no `typ`.
    pub fn mint(&self, claims: &SaClaims) -> String {
        self.mint_raw(&claims.to_json())
    }

    /// A signed token with any claims at all (for tokens a real cluster
    /// would never issue: missing or odd claims).
    pub fn mint_raw(&self, claims: &Value) -> String {
        sign(&self.key, self.alg, &self.kid, claims)
    }

    /// A forgery: `claims` signed with a fresh key of the same algorithm
    /// but with this issuer's `kid`, so only the signature is wrong.
    pub fn mint_forged(&self, claims: &SaClaims) -> String {
        sign(
            &Key::generate(self.alg),
            self.alg,
            &self.kid,
            &claims.to_json(),
        )
    }

    /// The public key as a JWK (`kid`, `use: sig`, `alg`).
    pub fn jwk(&self) -> Value {
        let mut jwk = self.key.jwk.clone();
        jwk.insert("kid".into(), self.kid.clone().into());
        jwk.insert("use".into(), "sig".into());
        jwk.insert("alg".into(), format!("{:?}", self.alg.algorithm()).into());
        Value::Object(jwk)
    }

    /// `{"keys": [<jwk>]}`, as `/openid/v1/jwks` serves it.
    pub fn jwks_json(&self) -> String {
        json!({"keys": [self.jwk()]}).to_string()
    }

    /// Verifies a token as the API server's authenticator does: `kid`,
    /// signature, `iss` equal to this issuer, `exp` and `nbf` (no leeway).
    /// Audiences and the bound objects are the caller's to check. The error
    /// is the API server's wording.
    pub fn verify(&self, token: &str) -> Result<Value, String> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| format!("invalid bearer token, token is malformed: {e}"))?;
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err("invalid bearer token, no key for the token's kid".to_owned());
        }
        let mut validation = Validation::new(self.alg.algorithm());
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        jsonwebtoken::decode::<Value>(token, &self.key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "service account token has expired".to_owned(),
                    ErrorKind::ImmatureSignature => {
                        "service account token is not valid yet".to_owned()
                    }
                    ErrorKind::InvalidSignature => {
                        "square/go-jose: error in cryptographic primitive".to_owned()
                    }
                    ErrorKind::InvalidIssuer => "token issuer is not trusted".to_owned(),
                    other => format!("{other:?}"),
                };
                format!("invalid bearer token, {why}")
            })
    }
}

fn sign(key: &Key, alg: SaKeyAlg, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg.algorithm());
    header.typ = None;
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign a service-account token")
}

/// The claims of a projected service-account token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaClaims {
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audiences: Vec<String>,
    /// `kubernetes.io.namespace`.
    pub namespace: String,
    /// `kubernetes.io.serviceaccount.name` (and `sub`).
    pub service_account: String,
    /// `kubernetes.io.serviceaccount.uid`.
    pub service_account_uid: String,
    /// `kubernetes.io.pod.name`; empty: a token bound to no pod (no `pod`
    /// claim at all, like a TokenRequest without a bound object).
    pub pod_name: String,
    /// `kubernetes.io.pod.uid`.
    pub pod_uid: String,
    /// `kubernetes.io.node.name` (Kubernetes 1.30+ pod-bound tokens).
    pub node_name: Option<String>,
    /// `kubernetes.io.node.uid`.
    pub node_uid: Option<String>,
    /// `iat` and `nbf`.
    pub issued_at: SystemTime,
    /// `exp`.
    pub expires_at: SystemTime,
    /// `jti`.
    pub jti: String,
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

impl SaClaims {
    /// A token for `<ns>:<sa>` bound to the pod `pod_name`/`pod_uid` (and,
    /// with `node`, to that node's name and uid), for one `audience`, valid
    /// from now for `ttl`; issuer [`DEFAULT_ISSUER`], fresh random `jti` and
    /// service-account uid.
    pub fn bound(
        ns: &str,
        sa: &str,
        pod_name: &str,
        pod_uid: &str,
        node: Option<(&str, &str)>,
        audience: &str,
        ttl: Duration,
    ) -> Self {
        let now = SystemTime::now();
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            audiences: vec![audience.to_owned()],
            namespace: ns.to_owned(),
            service_account: sa.to_owned(),
            service_account_uid: meta::uid(),
            pod_name: pod_name.to_owned(),
            pod_uid: pod_uid.to_owned(),
            node_name: node.map(|(n, _)| n.to_owned()),
            node_uid: node.map(|(_, u)| u.to_owned()),
            issued_at: now,
            expires_at: now + ttl,
            jti: meta::uid(),
        }
    }

    /// `system:serviceaccount:<ns>:<sa>`.
    pub fn username(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }

    /// The JWT claims set, as kube-apiserver writes it.
    pub fn to_json(&self) -> Value {
        let mut k8s = json!({
            "namespace": self.namespace,
            "serviceaccount": {"name": self.service_account, "uid": self.service_account_uid},
        });
        if !self.pod_name.is_empty() {
            k8s["pod"] = json!({"name": self.pod_name, "uid": self.pod_uid});
        }
        if let (Some(name), Some(uid)) = (&self.node_name, &self.node_uid) {
            k8s["node"] = json!({"name": name, "uid": uid});
        }
        json!({
            "aud": self.audiences,
            "exp": unix(self.expires_at),
            "iat": unix(self.issued_at),
            "nbf": unix(self.issued_at),
            "iss": self.issuer,
            "jti": self.jti,
            "kubernetes.io": k8s,
            "sub": self.username(),
        })
    }
}
