//! JWT-SVID stories: a trust domain signs, a relying party validates, and
//! every forgery we know of is refused with its own error.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use meshid_identity::jwt::{self, JwtError, JwtSigningKey, MAX_TOKEN_LEN};
use meshid_identity::{BundleSet, SpiffeId, TrustBundle, TrustDomain};

struct World {
    key: JwtSigningKey,
    other_key: JwtSigningKey,
    bundles: BundleSet,
    id: SpiffeId,
    now: SystemTime,
}

fn world() -> World {
    let key = JwtSigningKey::generate("k1").unwrap();
    // The other trust domain deliberately reuses the kid "k1".
    let other_key = JwtSigningKey::generate("k1").unwrap();
    let mut ours = TrustBundle::new(TrustDomain::new("example.org").unwrap());
    ours.jwt_authorities.push(key.public_authority());
    let mut theirs = TrustBundle::new(TrustDomain::new("other.org").unwrap());
    theirs.jwt_authorities.push(other_key.public_authority());
    World {
        key,
        other_key,
        bundles: [ours, theirs].into_iter().collect(),
        id: "spiffe://example.org/ns/payments/sa/api".parse().unwrap(),
        now: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    }
}

fn token(w: &World, key: &JwtSigningKey, aud: &[&str]) -> String {
    let aud: Vec<String> = aud.iter().map(|a| a.to_string()).collect();
    jwt::sign(key, &w.id, &aud, w.now, w.now + Duration::from_secs(300)).unwrap()
}

fn b64(json: &str) -> String {
    URL_SAFE_NO_PAD.encode(json)
}

fn claims_json(w: &World) -> String {
    let exp = w.now.duration_since(UNIX_EPOCH).unwrap().as_secs() + 300;
    format!(r#"{{"sub":"{}","aud":"payments","exp":{exp}}}"#, w.id)
}

#[test]
fn signed_token_validates_with_its_claims() {
    let w = world();
    let t = token(&w, &w.key, &["payments"]);
    let c = jwt::validate(&t, "payments", &w.bundles, w.now).unwrap();
    assert_eq!(c.spiffe_id, w.id);
    assert_eq!(c.audience, vec!["payments".to_string()]);
    assert_eq!(c.expiry, w.now + Duration::from_secs(300));
    assert_eq!(c.claims["aud"], "payments");
    assert!(c.claims.contains_key("iat"));

    let header = jsonwebtoken::decode_header(&t).unwrap();
    assert_eq!(header.kid.as_deref(), Some("k1"));
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
}

#[test]
fn many_audiences_become_an_array() {
    let w = world();
    let t = token(&w, &w.key, &["a", "b"]);
    let c = jwt::validate(&t, "b", &w.bundles, w.now).unwrap();
    assert_eq!(c.audience, vec!["a".to_string(), "b".to_string()]);
    assert!(c.claims["aud"].is_array());
}

#[test]
fn signing_refuses_bad_input() {
    let w = world();
    let later = w.now + Duration::from_secs(1);
    assert_eq!(
        jwt::sign(&w.key, &w.id, &[], w.now, later),
        Err(JwtError::EmptyAudience)
    );
    assert_eq!(
        jwt::sign(&w.key, &w.id, &["a".into()], later, w.now),
        Err(JwtError::InvalidLifetime)
    );
    assert!(matches!(
        JwtSigningKey::from_pkcs8_der("k", b"not a key"),
        Err(JwtError::InvalidSigningKey(_))
    ));
    assert!(matches!(
        JwtSigningKey::from_pkcs8_der("", w.key.pkcs8_der()),
        Err(JwtError::InvalidSigningKey(_))
    ));
}

#[test]
fn key_reloads_from_pkcs8_and_hides_itself_in_debug() {
    let w = world();
    let again = JwtSigningKey::from_pkcs8_der("k1", w.key.pkcs8_der()).unwrap();
    assert_eq!(again.public_authority(), w.key.public_authority());
    let t = token(&w, &again, &["payments"]);
    assert!(jwt::validate(&t, "payments", &w.bundles, w.now).is_ok());
    let dbg = format!("{:?}", w.key);
    assert!(dbg.contains("...") && dbg.contains("k1"), "{dbg}");
}

#[test]
fn alg_none_is_refused() {
    let w = world();
    let t = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
        b64(&claims_json(&w))
    );
    assert_eq!(
        jwt::validate(&t, "payments", &w.bundles, w.now),
        Err(JwtError::UnsupportedAlgorithm("none".into()))
    );
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let w = world();
    let public = w.key.public_authority().public_key_der;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    let claims: serde_json::Value = serde_json::from_str(&claims_json(&w)).unwrap();
    let t = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_eq!(
        jwt::validate(&t, "payments", &w.bundles, w.now),
        Err(JwtError::UnsupportedAlgorithm("HS256".into()))
    );
}

#[test]
fn alg_that_does_not_fit_the_key_is_refused() {
    let w = world();
    let t = token(&w, &w.key, &["payments"]);
    let (_, rest) = t.split_once('.').unwrap();
    let forged = format!(
        "{}.{rest}",
        b64(r#"{"alg":"ES384","typ":"JWT","kid":"k1"}"#)
    );
    assert!(matches!(
        jwt::validate(&forged, "payments", &w.bundles, w.now),
        Err(JwtError::AlgorithmKeyMismatch { .. })
    ));
}

#[test]
fn wrong_audience_is_refused() {
    let w = world();
    let t = token(&w, &w.key, &["payments"]);
    assert_eq!(
        jwt::validate(&t, "billing", &w.bundles, w.now),
        Err(JwtError::AudienceMismatch("billing".into()))
    );
}

#[test]
fn expiry_follows_the_injected_clock() {
    let w = world();
    let t = token(&w, &w.key, &["payments"]);
    let just_before = w.now + Duration::from_secs(299);
    assert!(jwt::validate(&t, "payments", &w.bundles, just_before).is_ok());
    let at_expiry = w.now + Duration::from_secs(300);
    assert_eq!(
        jwt::validate(&t, "payments", &w.bundles, at_expiry),
        Err(JwtError::Expired)
    );
}

#[test]
fn unknown_kid_is_refused() {
    let w = world();
    let stranger = JwtSigningKey::generate("k2").unwrap();
    let t = token(&w, &stranger, &["payments"]);
    assert_eq!(
        jwt::validate(&t, "payments", &w.bundles, w.now),
        Err(JwtError::UnknownKeyId("k2".into()))
    );
}

#[test]
fn missing_kid_is_refused() {
    let w = world();
    let t = token(&w, &w.key, &["payments"]);
    let (_, rest) = t.split_once('.').unwrap();
    let forged = format!("{}.{rest}", b64(r#"{"alg":"ES256","typ":"JWT"}"#));
    assert_eq!(
        jwt::validate(&forged, "payments", &w.bundles, w.now),
        Err(JwtError::MissingKeyId)
    );
}

#[test]
fn another_trust_domains_key_cannot_speak_for_us() {
    let w = world();
    // other.org's key signs a token claiming an example.org identity.
    let t = token(&w, &w.other_key, &["payments"]);
    assert_eq!(
        jwt::validate(&t, "payments", &w.bundles, w.now),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn unknown_trust_domain_is_refused() {
    let w = world();
    let id: SpiffeId = "spiffe://stranger.org/x".parse().unwrap();
    let t = jwt::sign(
        &w.key,
        &id,
        &["payments".into()],
        w.now,
        w.now + Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(
        jwt::validate(&t, "payments", &w.bundles, w.now),
        Err(JwtError::UnknownTrustDomain(
            TrustDomain::new("stranger.org").unwrap()
        ))
    );
}

#[test]
fn tampered_payload_is_refused() {
    let w = world();
    let t = token(&w, &w.key, &["payments"]);
    let parts: Vec<&str> = t.split('.').collect();
    let claims = claims_json(&w).replace("/ns/payments/sa/api", "/ns/payments/sa/admin");
    let forged = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert_eq!(
        jwt::validate(&forged, "payments", &w.bundles, w.now),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn invalid_subject_is_refused() {
    let w = world();
    let t = token(&w, &w.key, &["payments"]);
    let parts: Vec<&str> = t.split('.').collect();
    let claims = claims_json(&w).replace("spiffe://example.org/ns", "https://example.org/ns");
    let forged = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert!(matches!(
        jwt::validate(&forged, "payments", &w.bundles, w.now),
        Err(JwtError::InvalidSubject(_))
    ));
}

#[test]
fn oversize_and_malformed_tokens_are_refused() {
    let w = world();
    let big = "a".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(
        jwt::validate(&big, "payments", &w.bundles, w.now),
        Err(JwtError::TooLong(MAX_TOKEN_LEN + 1))
    );
    for bad in ["", "a.b", "a.b.c.d", "!!!.e30.e30", "e30.e30.e30"] {
        assert!(
            matches!(
                jwt::validate(bad, "payments", &w.bundles, w.now),
                Err(JwtError::Malformed(_))
            ),
            "{bad:?}"
        );
    }
}
