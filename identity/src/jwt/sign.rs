//! Minting JWT-SVIDs.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Header};
use serde_json::{Map, Value};

use super::{JwtError, JwtSigningKey};
use crate::SpiffeId;

/// Signs a JWT-SVID for `sub` with ES256: header `{alg, typ: JWT, kid}`,
/// claims `sub`, `aud` (a string if one audience, else an array), `iat`
/// and `exp` (whole seconds).
pub fn sign(
    key: &JwtSigningKey,
    sub: &SpiffeId,
    audience: &[String],
    issued_at: SystemTime,
    expires_at: SystemTime,
) -> Result<String, JwtError> {
    let aud = match audience {
        [] => return Err(JwtError::EmptyAudience),
        [one] => Value::from(one.clone()),
        many => Value::from(many.to_vec()),
    };
    let iat = unix_seconds(issued_at)?;
    let exp = unix_seconds(expires_at)?;
    if exp <= iat {
        return Err(JwtError::InvalidLifetime);
    }
    let mut claims = Map::new();
    claims.insert("sub".into(), sub.as_str().into());
    claims.insert("aud".into(), aud);
    claims.insert("exp".into(), exp.into());
    claims.insert("iat".into(), iat.into());

    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.key_id.clone());
    jsonwebtoken::encode(&header, &claims, &key.encoding_key())
        .map_err(|e| JwtError::Signing(e.to_string()))
}

fn unix_seconds(t: SystemTime) -> Result<u64, JwtError> {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| JwtError::InvalidLifetime)
}
