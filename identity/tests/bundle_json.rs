//! Trust bundles through SPIFFE bundle JSON and PEM: what goes out comes
//! back, and hostile documents are refused with the matching error.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use meshid_identity::bundle::{BundleError, MAX_BUNDLE_LEN};
use meshid_identity::jwt::JwtSigningKey;
use meshid_identity::{TrustBundle, TrustDomain};
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};

fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

fn ca_cert(alg: &'static rcgen::SignatureAlgorithm) -> CertificateDer<'static> {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().der().clone()
}

fn full_bundle() -> TrustBundle {
    let mut b = TrustBundle::new(td());
    b.x509_authorities
        .push(ca_cert(&rcgen::PKCS_ECDSA_P256_SHA256));
    b.x509_authorities
        .push(ca_cert(&rcgen::PKCS_ECDSA_P384_SHA384));
    b.jwt_authorities
        .push(JwtSigningKey::generate("jwt-1").unwrap().public_authority());
    b.jwt_authorities
        .push(JwtSigningKey::generate("jwt-2").unwrap().public_authority());
    b.sequence = 42;
    b.refresh_hint = Some(Duration::from_secs(300));
    b
}

fn parse(v: &Value) -> Result<TrustBundle, BundleError> {
    TrustBundle::from_spiffe_json(td(), v.to_string().as_bytes())
}

fn doc(b: &TrustBundle) -> Value {
    serde_json::from_str(&b.to_spiffe_json()).unwrap()
}

#[test]
fn json_round_trip_keeps_everything() {
    let b = full_bundle();
    let json = b.to_spiffe_json();
    let back = TrustBundle::from_spiffe_json(td(), json.as_bytes()).unwrap();
    assert_eq!(back, b);
    assert_eq!(back.sequence, 42);
    assert_eq!(back.refresh_hint, Some(Duration::from_secs(300)));
}

#[test]
fn json_follows_the_spiffe_shape() {
    let d = doc(&full_bundle());
    assert_eq!(d["spiffe_sequence"], 42);
    assert_eq!(d["spiffe_refresh_hint"], 300);
    let keys = d["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 4);
    let x509 = &keys[0];
    assert_eq!(x509["use"], "x509-svid");
    assert_eq!(x509["kty"], "EC");
    assert_eq!(x509["crv"], "P-256");
    assert_eq!(x509["x5c"].as_array().unwrap().len(), 1);
    assert_eq!(keys[1]["crv"], "P-384");
    let jwt = &keys[2];
    assert_eq!(jwt["use"], "jwt-svid");
    assert_eq!(jwt["kid"], "jwt-1");
    assert_eq!(jwt["kty"], "EC");
    assert!(jwt.get("x5c").is_none());
    assert_eq!(jwt["x"].as_str().unwrap().len(), 43); // 32 bytes, base64url
}

#[test]
fn unknown_use_and_absent_hints_are_tolerated() {
    let mut d = doc(&full_bundle());
    d.as_object_mut().unwrap().remove("spiffe_refresh_hint");
    d["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "EC", "use": "future-svid", "x5c": []}));
    let b = parse(&d).unwrap();
    assert_eq!(b.x509_authorities.len(), 2);
    assert_eq!(b.jwt_authorities.len(), 2);
    assert_eq!(b.refresh_hint, None);

    let empty = parse(&json!({"keys": []})).unwrap();
    assert_eq!(empty, TrustBundle::new(td()));
}

#[test]
fn x5c_must_hold_exactly_one_cert() {
    let b = full_bundle();
    let mut d = doc(&b);
    let cert = d["keys"][0]["x5c"][0].clone();
    d["keys"][0]["x5c"] = json!([cert.clone(), cert]);
    assert!(matches!(parse(&d), Err(BundleError::X5cCount(2))));
    d["keys"][0]["x5c"] = json!([]);
    assert!(matches!(parse(&d), Err(BundleError::X5cCount(0))));
    d["keys"][0].as_object_mut().unwrap().remove("x5c");
    assert!(matches!(parse(&d), Err(BundleError::X5cCount(0))));
}

#[test]
fn jwt_key_needs_a_kid() {
    let mut d = doc(&full_bundle());
    d["keys"][2].as_object_mut().unwrap().remove("kid");
    assert!(matches!(parse(&d), Err(BundleError::MissingKeyId)));
    d["keys"][2]["kid"] = json!("");
    assert!(matches!(parse(&d), Err(BundleError::MissingKeyId)));
    d["keys"][2]["kid"] = json!("jwt-2");
    assert!(matches!(parse(&d), Err(BundleError::DuplicateKeyId(k)) if k == "jwt-2"));
}

#[test]
fn malformed_base64_is_refused() {
    let mut d = doc(&full_bundle());
    d["keys"][0]["x5c"] = json!(["not*base64"]);
    assert!(matches!(
        parse(&d),
        Err(BundleError::InvalidBase64 { field: "x5c" })
    ));
    let mut d = doc(&full_bundle());
    d["keys"][2]["x"] = json!("a+b/");
    assert!(matches!(
        parse(&d),
        Err(BundleError::InvalidBase64 { field: "x" })
    ));
}

#[test]
fn key_fields_must_match_the_certificate() {
    let b = full_bundle();
    let mut d = doc(&b);
    // Put the JWT key's coordinates on the X.509 authority.
    d["keys"][0]["x"] = d["keys"][2]["x"].clone();
    d["keys"][0]["y"] = d["keys"][2]["y"].clone();
    assert!(matches!(parse(&d), Err(BundleError::KeyMismatch)));

    let mut d = doc(&b);
    d["keys"][0].as_object_mut().unwrap().remove("kty");
    assert!(matches!(
        parse(&d),
        Err(BundleError::MissingKeyParameter("kty"))
    ));
}

#[test]
fn garbage_certificates_and_keys_are_refused() {
    let mut d = doc(&full_bundle());
    d["keys"][0]["x5c"] = json!([STANDARD.encode(b"definitely not DER")]);
    assert!(matches!(parse(&d), Err(BundleError::InvalidCertificate(_))));

    let mut d = doc(&full_bundle());
    d["keys"][2]["crv"] = json!("P-521");
    assert!(matches!(parse(&d), Err(BundleError::UnsupportedKey(_))));
    d["keys"][2]["kty"] = json!("oct");
    assert!(matches!(parse(&d), Err(BundleError::UnsupportedKey(_))));
}

#[test]
fn malformed_and_oversize_documents_are_refused() {
    for bad in [
        "",
        "[]",
        "{}",
        r#"{"keys": 5}"#,
        r#"{"keys": [], "spiffe_sequence": -1}"#,
        r#"{"keys": [], "keys": []}"#,
        "{\"keys\": [",
    ] {
        assert!(
            matches!(
                TrustBundle::from_spiffe_json(td(), bad.as_bytes()),
                Err(BundleError::Json(_))
            ),
            "{bad:?}"
        );
    }
    let huge = vec![b' '; MAX_BUNDLE_LEN + 1];
    assert!(matches!(
        TrustBundle::from_spiffe_json(td(), &huge),
        Err(BundleError::TooLarge { size, .. }) if size == MAX_BUNDLE_LEN + 1
    ));
}

#[test]
fn pem_round_trip_keeps_the_x509_authorities() {
    let b = full_bundle();
    let text = b.to_pem();
    assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    let back = TrustBundle::from_pem(td(), &text).unwrap();
    assert_eq!(back.x509_authorities, b.x509_authorities);
    assert!(back.jwt_authorities.is_empty());
}

#[test]
fn pem_refuses_other_blocks_and_garbage() {
    let b = full_bundle();
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let text = format!("{}{key}", b.to_pem());
    assert!(matches!(
        TrustBundle::from_pem(td(), &text),
        Err(BundleError::NotCertificate(tag)) if tag == "PRIVATE KEY"
    ));
    assert!(matches!(
        TrustBundle::from_pem(td(), ""),
        Err(BundleError::NoCertificates)
    ));
    let fake = pem::encode(&pem::Pem::new("CERTIFICATE", b"nope".to_vec()));
    assert!(matches!(
        TrustBundle::from_pem(td(), &fake),
        Err(BundleError::InvalidCertificate(_))
    ));
    let huge = "x".repeat(MAX_BUNDLE_LEN + 1);
    assert!(matches!(
        TrustBundle::from_pem(td(), &huge),
        Err(BundleError::TooLarge { .. })
    ));
}
