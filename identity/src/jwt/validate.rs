//! Validating JWT-SVIDs against trust bundles.
//!
//! The token is picked apart by hand before any cryptography: the header
//! decides nothing until its `alg` is on the allow-list and fits the key the
//! bundle holds for its `kid`, which closes the `none` and HMAC-with-a-
//! public-key holes. Only the signature check is left to `jsonwebtoken`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::{JwtError, JwtSvidClaims, MAX_TOKEN_LEN};
use crate::bundle::jwk::{Curve, KeyParams};
use crate::{BundleSet, SpiffeId};

type Object = Map<String, Value>;

/// Validates a JWT-SVID for `audience` at time `now`.
///
/// Checks, in order: size, shape, `alg` allow-list, `typ`, `kid`, `sub`
/// (a SPIFFE ID whose trust domain has a bundle in `bundles`), that the
/// bundle has a key for `kid` of the type `alg` needs, the signature, `exp`
/// (required, must be after `now`), `nbf` (if present) and `aud` (must
/// contain `audience`). No clock skew leeway is applied.
pub fn validate(
    token: &str,
    audience: &str,
    bundles: &BundleSet,
    now: SystemTime,
) -> Result<JwtSvidClaims, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLong(token.len()));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("a JWT has three dot-separated parts"));
    };
    let header = decode_object(header_b64, "header is not base64url-encoded JSON object")?;
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwtError::Malformed("header has no \"alg\" string"))?;
    let alg = allowed_algorithm(alg_name)?;
    match header.get("typ") {
        None => {}
        Some(Value::String(t)) if t == "JWT" || t == "JOSE" => {}
        Some(other) => return Err(JwtError::BadType(truncate(&other.to_string()))),
    }
    if header.contains_key("crit") {
        return Err(JwtError::CriticalHeader);
    }
    let kid = match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => kid.as_str(),
        _ => return Err(JwtError::MissingKeyId),
    };
    let claims = decode_object(claims_b64, "claims are not base64url-encoded JSON object")?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or(JwtError::MissingClaim("sub"))?;
    let spiffe_id = SpiffeId::parse(sub).map_err(JwtError::InvalidSubject)?;

    let trust_domain = spiffe_id.trust_domain();
    let bundle = bundles
        .get(&trust_domain)
        .ok_or(JwtError::UnknownTrustDomain(trust_domain))?;
    let authority = bundle
        .jwt_authority(kid)
        .ok_or_else(|| JwtError::UnknownKeyId(truncate(kid)))?;
    let key = KeyParams::from_spki_der(&authority.public_key_der)
        .map_err(|_| JwtError::InvalidAuthorityKey(authority.key_id.clone()))?;
    let decoding_key = decoding_key_for(alg, alg_name, &key)?;

    if URL_SAFE_NO_PAD.decode(signature_b64).is_err() {
        return Err(JwtError::Malformed("signature is not base64url"));
    }
    let message = &token[..header_b64.len() + 1 + claims_b64.len()];
    let verified =
        jsonwebtoken::crypto::verify(signature_b64, message.as_bytes(), &decoding_key, alg);
    match verified {
        Ok(true) => {}
        Ok(false) => return Err(JwtError::BadSignature),
        Err(_) => return Err(JwtError::InvalidAuthorityKey(authority.key_id.clone())),
    }

    let expiry = numeric_date(&claims, "exp")?.ok_or(JwtError::MissingClaim("exp"))?;
    if now >= expiry {
        return Err(JwtError::Expired);
    }
    if let Some(not_before) = numeric_date(&claims, "nbf")?
        && now < not_before
    {
        return Err(JwtError::NotYetValid);
    }
    let audiences = audience_claim(&claims)?;
    if !audiences.iter().any(|a| a == audience) {
        return Err(JwtError::AudienceMismatch(truncate(audience)));
    }
    Ok(JwtSvidClaims {
        spiffe_id,
        audience: audiences,
        expiry,
        claims,
    })
}

fn allowed_algorithm(name: &str) -> Result<Algorithm, JwtError> {
    Ok(match name {
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        other => return Err(JwtError::UnsupportedAlgorithm(truncate(other))),
    })
}

/// The verification key for `alg`, if the bundle key is of the matching
/// type (and, for ECDSA, curve).
fn decoding_key_for(
    alg: Algorithm,
    alg_name: &str,
    key: &KeyParams,
) -> Result<DecodingKey, JwtError> {
    let mismatch = |key: &'static str| JwtError::AlgorithmKeyMismatch {
        alg: alg_name.to_owned(),
        key,
    };
    match (alg, key) {
        (
            Algorithm::ES256,
            KeyParams::Ec {
                curve: Curve::P256,
                point,
            },
        )
        | (
            Algorithm::ES384,
            KeyParams::Ec {
                curve: Curve::P384,
                point,
            },
        ) => {
            // The RustCrypto backend reads EC keys as SEC1 points.
            Ok(DecodingKey::from_ec_der(point))
        }
        (
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
            KeyParams::Rsa { n, e },
        ) => Ok(DecodingKey::from_rsa_raw_components(n, e)),
        (
            _,
            KeyParams::Ec {
                curve: Curve::P256, ..
            },
        ) => Err(mismatch("EC P-256")),
        (
            _,
            KeyParams::Ec {
                curve: Curve::P384, ..
            },
        ) => Err(mismatch("EC P-384")),
        (_, KeyParams::Rsa { .. }) => Err(mismatch("RSA")),
    }
}

fn decode_object(part: &str, what: &'static str) -> Result<Object, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed(what))
}

/// A NumericDate claim (seconds since the epoch; fractions allowed and
/// truncated). `Ok(None)` if absent.
fn numeric_date(claims: &Object, name: &'static str) -> Result<Option<SystemTime>, JwtError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let secs = match (value.as_u64(), value.as_f64()) {
        (Some(secs), _) => secs,
        (None, Some(f)) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => f as u64,
        _ => return Err(JwtError::MissingClaim(name)),
    };
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .map(Some)
        .ok_or(JwtError::MissingClaim(name))
}

fn audience_claim(claims: &Object) -> Result<Vec<String>, JwtError> {
    match claims.get("aud") {
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(many)) if !many.is_empty() => many
            .iter()
            .map(|a| {
                a.as_str()
                    .map(str::to_owned)
                    .ok_or(JwtError::MissingClaim("aud"))
            })
            .collect(),
        _ => Err(JwtError::MissingClaim("aud")),
    }
}

/// Caps attacker-chosen strings echoed in errors.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}
