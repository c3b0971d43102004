//! The SPIFFE bundle format: a JWK Set with `spiffe_sequence` and
//! `spiffe_refresh_hint` (SPIFFE Trust Domain and Bundle spec, section 4).
//!
//! X.509 authorities are JWKs with `use: "x509-svid"` and exactly one
//! certificate in `x5c`; JWT authorities are JWKs with `use: "jwt-svid"` and
//! a `kid`. JWKs with any other `use` are ignored, as the spec requires.

use std::collections::HashSet;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::CertificateDer;
use serde_json::{Map, Value};

use super::jwk::{JwkFields, KeyParams};
use super::{BundleError, JwtAuthority, MAX_BUNDLE_LEN, TrustBundle, parse_certificate};
use crate::TrustDomain;

const USE_X509: &str = "x509-svid";
const USE_JWT: &str = "jwt-svid";

#[derive(serde::Deserialize)]
struct Document {
    keys: Vec<JwkFields>,
    spiffe_sequence: Option<u64>,
    spiffe_refresh_hint: Option<u64>,
}

/// Serialises `bundle` as a SPIFFE bundle JSON document.
pub(super) fn encode(bundle: &TrustBundle) -> String {
    let mut keys = Vec::new();
    for cert in &bundle.x509_authorities {
        let mut jwk = Map::new();
        if let Ok(params) = parse_certificate(cert)
            .and_then(|c| KeyParams::from_spki(&c.tbs_certificate.subject_pki))
        {
            params.write_jwk(&mut jwk);
        }
        jwk.insert("use".into(), USE_X509.into());
        jwk.insert(
            "x5c".into(),
            Value::Array(vec![STANDARD.encode(cert).into()]),
        );
        keys.push(Value::Object(jwk));
    }
    for authority in &bundle.jwt_authorities {
        let mut jwk = Map::new();
        if let Ok(params) = KeyParams::from_spki_der(&authority.public_key_der) {
            params.write_jwk(&mut jwk);
        }
        jwk.insert("kid".into(), authority.key_id.clone().into());
        jwk.insert("use".into(), USE_JWT.into());
        if let Some(at) = authority.expires_at {
            let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            jwk.insert("exp".into(), secs.into());
        }
        keys.push(Value::Object(jwk));
    }
    let mut doc = Map::new();
    doc.insert("keys".into(), Value::Array(keys));
    doc.insert("spiffe_sequence".into(), bundle.sequence.into());
    if let Some(hint) = bundle.refresh_hint {
        doc.insert("spiffe_refresh_hint".into(), hint.as_secs().into());
    }
    Value::Object(doc).to_string()
}

/// Parses a SPIFFE bundle JSON document for `trust_domain`.
pub(super) fn decode(trust_domain: TrustDomain, json: &[u8]) -> Result<TrustBundle, BundleError> {
    if json.len() > MAX_BUNDLE_LEN {
        return Err(BundleError::TooLarge {
            size: json.len(),
            limit: MAX_BUNDLE_LEN,
        });
    }
    let doc: Document = serde_json::from_slice(json).map_err(BundleError::Json)?;
    let mut bundle = TrustBundle::new(trust_domain);
    bundle.sequence = doc.spiffe_sequence.unwrap_or(0);
    bundle.refresh_hint = doc.spiffe_refresh_hint.map(Duration::from_secs);
    let mut kids = HashSet::new();
    for jwk in &doc.keys {
        match jwk.use_.as_deref() {
            Some(USE_X509) => bundle.x509_authorities.push(x509_authority(jwk)?),
            Some(USE_JWT) => {
                let authority = jwt_authority(jwk)?;
                if !kids.insert(authority.key_id.clone()) {
                    return Err(BundleError::DuplicateKeyId(authority.key_id));
                }
                bundle.jwt_authorities.push(authority);
            }
            // Unknown or absent `use`: the spec says to ignore the key.
            _ => {}
        }
    }
    Ok(bundle)
}

fn x509_authority(jwk: &JwkFields) -> Result<CertificateDer<'static>, BundleError> {
    let chain = jwk.x5c.as_deref().unwrap_or_default();
    let [cert_b64] = chain else {
        return Err(BundleError::X5cCount(chain.len()));
    };
    let der = STANDARD
        .decode(cert_b64)
        .map_err(|_| BundleError::InvalidBase64 { field: "x5c" })?;
    let der = CertificateDer::from(der);
    let cert = parse_certificate(&der)?;
    let cert_key = KeyParams::from_spki(&cert.tbs_certificate.subject_pki)?;
    if KeyParams::from_jwk(jwk)? != cert_key {
        return Err(BundleError::KeyMismatch);
    }
    Ok(der.clone().into_owned())
}

fn jwt_authority(jwk: &JwkFields) -> Result<JwtAuthority, BundleError> {
    let key_id = match jwk.kid.as_deref() {
        Some(kid) if !kid.is_empty() => kid.to_owned(),
        _ => return Err(BundleError::MissingKeyId),
    };
    let params = KeyParams::from_jwk(jwk)?;
    Ok(JwtAuthority {
        key_id,
        public_key_der: params.to_spki_der(),
        expires_at: jwk.exp.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
    })
}
