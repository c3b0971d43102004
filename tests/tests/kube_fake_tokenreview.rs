//! The fixtures behind the k8s_psat tests: service-account tokens minted
//! by [`SaIssuer`] (real ES256/RS256 JWTs), the fake API server's
//! TokenReview endpoint reached with kube-rs as the CA reaches it, and the
//! HTTPS OIDC discovery of [`OidcIssuer`] fetched with curl.

#[path = "kube_fake/support.rs"]
mod support;

use std::time::{Duration, SystemTime};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::api::{Api, PostParams};
use meshid_tests::kube::sa_token::DEFAULT_ISSUER;
use meshid_tests::kube::{FakeApiServer, OidcIssuer, SaClaims, SaIssuer, SaKeyAlg};
use serde_json::{Value, json};
use support::{api_error, client, namespace};

const AUD: &str = "meshid-ca";
const EXTRA: &str = "authentication.kubernetes.io";

/// Creates namespace `ns` (once) and a pod on `node`; returns its uid.
fn make_pod(api: &FakeApiServer, ns: &str, name: &str, node: &str) -> String {
    if api.get("namespaces", "", ns).is_none() {
        api.create(namespace(ns)).expect("namespace");
    }
    let pod = api
        .create(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": node, "serviceAccountName": "meshid-agent",
                     "containers": [{"name": "agent", "image": "meshid:1"}]},
        }))
        .expect("pod");
    pod["metadata"]["uid"].as_str().expect("uid").to_owned()
}

async fn review(api: &FakeApiServer, token: &str, audiences: &[&str]) -> TokenReviewStatus {
    let reviews: Api<TokenReview> = Api::all(client(api, "meshid-ca").await);
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: Some(audiences.iter().map(|a| (*a).to_owned()).collect()),
        },
        ..Default::default()
    };
    let answer = reviews
        .create(&PostParams::default(), &review)
        .await
        .expect("TokenReview create");
    answer.status.expect("a review has a status")
}

fn refused(status: &TokenReviewStatus) -> String {
    assert_eq!(status.authenticated, Some(false), "{status:?}");
    status.error.clone().expect("a refusal says why")
}

#[tokio::test]
async fn a_bound_token_is_authenticated_with_its_pod_and_node() {
    let api = FakeApiServer::start().await;
    let pod_uid = make_pod(&api, "meshid-system", "agent-x1", "node-1");
    let claims = SaClaims::bound(
        "meshid-system",
        "meshid-agent",
        "agent-x1",
        &pod_uid,
        Some(("node-1", "node-uid-1")),
        AUD,
        Duration::from_secs(600),
    );
    let token = api.sa_issuer().mint(&claims);
    api.clear_requests();

    let status = review(&api, &token, &[AUD]).await;
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    assert_eq!(status.error, None);
    assert_eq!(status.audiences, Some(vec![AUD.to_owned()]));
    let user = status.user.expect("user");
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:meshid-system:meshid-agent")
    );
    assert_eq!(
        user.uid.as_deref(),
        Some(claims.service_account_uid.as_str())
    );
    assert!(
        user.groups
            .unwrap_or_default()
            .contains(&"system:serviceaccounts:meshid-system".to_owned())
    );
    let extra = user.extra.expect("extra");
    let one = |k: &str| extra.get(&format!("{EXTRA}/{k}")).cloned();
    assert_eq!(one("pod-name"), Some(vec!["agent-x1".to_owned()]));
    assert_eq!(one("pod-uid"), Some(vec![pod_uid.clone()]));
    assert_eq!(one("node-name"), Some(vec!["node-1".to_owned()]));
    assert_eq!(one("node-uid"), Some(vec!["node-uid-1".to_owned()]));
    assert_eq!(
        one("credential-id"),
        Some(vec![format!("JTI={}", claims.jti)])
    );

    let log: Vec<_> = api
        .requests()
        .into_iter()
        .map(|r| (r.verb, r.group, r.resource))
        .collect();
    assert_eq!(
        log,
        [(
            "create",
            "authentication.k8s.io".to_owned(),
            "tokenreviews".to_owned()
        )]
    );

    // Reviews are only created.
    let reviews: Api<TokenReview> = Api::all(client(&api, "meshid-ca").await);
    let (code, _) = api_error(reviews.get("x").await.expect_err("get a review"));
    assert_eq!(code, 405);

    // Without node claims there are no node extras; with no audiences
    // asked for, the API server's own audience is the target.
    let mut no_node = claims.clone();
    (no_node.node_name, no_node.node_uid) = (None, None);
    no_node.audiences = vec![DEFAULT_ISSUER.to_owned()];
    let status = review(&api, &api.sa_issuer().mint(&no_node), &[]).await;
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    assert_eq!(status.audiences, Some(vec![DEFAULT_ISSUER.to_owned()]));
    let extra = status.user.and_then(|u| u.extra).expect("extra");
    assert!(!extra.contains_key(&format!("{EXTRA}/node-name")));
    assert!(extra.contains_key(&format!("{EXTRA}/pod-uid")));
}

#[tokio::test]
async fn forged_expired_wrong_audience_deleted_and_replaced_pods_are_refused() {
    let api = FakeApiServer::start().await;
    let ns = "meshid-system";
    let pod_uid = make_pod(&api, ns, "agent-x1", "node-1");
    let good = SaClaims::bound(
        ns,
        "meshid-agent",
        "agent-x1",
        &pod_uid,
        Some(("node-1", "node-uid-1")),
        AUD,
        Duration::from_secs(600),
    );
    let issuer = api.sa_issuer();

    let forged = refused(&review(&api, &issuer.mint_forged(&good), &[AUD]).await);
    assert!(forged.contains("cryptographic primitive"), "{forged}");

    let other_key = SaIssuer::new(DEFAULT_ISSUER, SaKeyAlg::Es256).mint(&good);
    let unknown = refused(&review(&api, &other_key, &[AUD]).await);
    assert!(unknown.contains("invalid bearer token"), "{unknown}");

    let mut expired = good.clone();
    expired.issued_at = SystemTime::now() - Duration::from_secs(7200);
    expired.expires_at = SystemTime::now() - Duration::from_secs(3600);
    let expired = refused(&review(&api, &issuer.mint(&expired), &[AUD]).await);
    assert!(expired.contains("has expired"), "{expired}");

    let mut early = good.clone();
    early.issued_at = SystemTime::now() + Duration::from_secs(3600);
    early.expires_at = SystemTime::now() + Duration::from_secs(7200);
    let early = refused(&review(&api, &issuer.mint(&early), &[AUD]).await);
    assert!(early.contains("not valid yet"), "{early}");

    let mut other_aud = good.clone();
    other_aud.audiences = vec!["vault".to_owned()];
    let aud = refused(&review(&api, &issuer.mint(&other_aud), &[AUD]).await);
    assert!(
        aud.contains(
            r#"token audiences ["vault"] is invalid for the target audiences ["meshid-ca"]"#
        ),
        "{aud}"
    );
    let aud = refused(&review(&api, &issuer.mint(&good), &["someone-else"]).await);
    assert!(aud.contains("is invalid for the target audiences"), "{aud}");

    let mut other_issuer = good.clone();
    other_issuer.issuer = "https://elsewhere.example".to_owned();
    let iss = refused(&review(&api, &issuer.mint(&other_issuer), &[AUD]).await);
    assert!(iss.contains("issuer"), "{iss}");

    // The pod is replaced: same name, another uid.
    let token = issuer.mint(&good);
    assert_eq!(review(&api, &token, &[AUD]).await.authenticated, Some(true));
    api.delete("pods", ns, "agent-x1").expect("delete pod");
    let gone = refused(&review(&api, &token, &[AUD]).await);
    assert!(
        gone.contains(r#"pod "meshid-system/agent-x1" not found"#),
        "{gone}"
    );
    let new_uid = make_pod(&api, ns, "agent-x1", "node-1");
    assert_ne!(new_uid, pod_uid);
    let replaced = refused(&review(&api, &token, &[AUD]).await);
    assert!(replaced.contains("pod uid mismatch"), "{replaced}");

    // Garbage is refused, not an HTTP error.
    let garbage = refused(&review(&api, "not.a.jwt", &[AUD]).await);
    assert!(garbage.contains("invalid bearer token"), "{garbage}");
}

/// Verifies `token` against a JWKS document with jsonwebtoken alone.
fn verify_with_jwks(jwks: &str, token: &str, issuer: &str) -> Value {
    let set: JwkSet = serde_json::from_str(jwks).expect("JWKS");
    let header = jsonwebtoken::decode_header(token).expect("header");
    let kid = header.kid.expect("kid");
    let jwk = set.find(&kid).expect("the token's kid is in the key set");
    let key = DecodingKey::from_jwk(jwk).expect("decoding key");
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[AUD]);
    validation.set_issuer(&[issuer]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("the token verifies against the JWKS")
        .claims
}

#[test]
fn es256_and_rs256_tokens_verify_against_their_jwks() {
    for alg in [SaKeyAlg::Es256, SaKeyAlg::Rs256] {
        let issuer = SaIssuer::new("https://issuer.test", alg);
        let jwks: Value = serde_json::from_str(&issuer.jwks_json()).expect("json");
        assert_eq!(jwks["keys"][0]["kid"], issuer.kid());
        assert_eq!(jwks["keys"][0]["use"], "sig");
        let mut claims = SaClaims::bound(
            "payments",
            "api",
            "api-0",
            "uid-0",
            None,
            AUD,
            Duration::from_secs(60),
        );
        claims.issuer = issuer.issuer().to_owned();
        let token = issuer.mint(&claims);
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.typ, None, "{alg:?}");
        let got = verify_with_jwks(&issuer.jwks_json(), &token, issuer.issuer());
        assert_eq!(got["sub"], "system:serviceaccount:payments:api");
        assert_eq!(got["kubernetes.io"]["pod"]["uid"], "uid-0");
        assert_eq!(got["kubernetes.io"]["serviceaccount"]["name"], "api");
        assert!(got["kubernetes.io"].get("node").is_none());
        assert_eq!(issuer.verify(&token).expect("verify")["jti"], claims.jti);
        assert!(
            issuer
                .verify(&issuer.mint_forged(&claims))
                .expect_err("forged")
                .contains("cryptographic primitive")
        );
    }
    // The thumbprint is the key's: two issuers never share a kid.
    let (a, b) = (
        SaIssuer::new("https://a", SaKeyAlg::Es256),
        SaIssuer::new("https://a", SaKeyAlg::Es256),
    );
    assert_ne!(a.kid(), b.kid());
    assert_eq!(a.kid().len(), 43);
}

fn curl(url: &str, ca: &std::path::Path) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg(url)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test]
async fn oidc_discovery_serves_the_issuers_keys_over_https() {
    let oidc = OidcIssuer::start(SaKeyAlg::Rs256).await;
    let dir = meshid_tests::tempdir();
    let ca = dir.path().join("ca.pem");
    oidc.write_ca(&ca);
    let url = oidc.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let (doc, jwks, localhost) = {
        let (url, ca) = (url.clone(), ca.clone());
        tokio::task::spawn_blocking(move || {
            let doc = curl(&format!("{url}/.well-known/openid-configuration"), &ca);
            let doc: Value = serde_json::from_str(&doc).expect("discovery JSON");
            let jwks = curl(doc["jwks_uri"].as_str().expect("jwks_uri"), &ca);
            let port = url.rsplit(':').next().expect("port").to_owned();
            let localhost = curl(&format!("https://localhost:{port}/openid/v1/jwks"), &ca);
            (doc, jwks, localhost)
        })
        .await
        .expect("curl task")
    };
    assert_eq!(doc["issuer"], url.as_str());
    assert_eq!(doc["jwks_uri"], format!("{url}/openid/v1/jwks"));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(jwks, localhost);
    assert_eq!((oidc.discovery_fetches(), oidc.jwks_fetches()), (1, 2));

    let mut claims = SaClaims::bound(
        "payments",
        "api",
        "api-0",
        "uid-0",
        Some(("node-1", "nuid-1")),
        AUD,
        Duration::from_secs(60),
    );
    claims.issuer = url.clone();
    let token = oidc.issuer().mint(&claims);
    let got = verify_with_jwks(&jwks, &token, &url);
    assert_eq!(got["kubernetes.io"]["node"]["name"], "node-1");

    // After a rotation the key set holds only the new key.
    let old_kid = oidc.issuer().kid().to_owned();
    let new = oidc.rotate();
    assert_ne!(new.kid(), old_kid);
    let jwks = tokio::task::spawn_blocking(move || curl(&format!("{url}/openid/v1/jwks"), &ca))
        .await
        .expect("curl task");
    let set: JwkSet = serde_json::from_str(&jwks).expect("JWKS");
    assert!(set.find(&old_kid).is_none());
    assert!(set.find(new.kid()).is_some());
}
