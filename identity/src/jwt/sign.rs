//! Minting JWT-SVIDs: the one encoding of header and claims, signed by any
//! [`JwtSigner`] (ring's [`JwtSigningKey`](super::JwtSigningKey) here, an
//! OpenSSL key in the CA's OpenSSL backend).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::JwtError;
use crate::SpiffeId;

/// An ES256 (ECDSA P-256, SHA-256) signing key for JWT-SVIDs, wherever its
/// private half lives. [`sign`] builds the token; a signer only signs.
pub trait JwtSigner: Send + Sync + fmt::Debug {
    /// The key ID written into each token's header (`kid`).
    fn key_id(&self) -> &str;

    /// The ES256 signature of `signing_input` (`header.claims`, base64url),
    /// as JWS wants it: the 32-byte `r` then the 32-byte `s`, big-endian
    /// (RFC 7518 §3.4), not DER.
    fn sign_es256(&self, signing_input: &[u8]) -> Result<[u8; 64], JwtError>;
}

/// Signs a JWT-SVID for `sub` with ES256: header `{alg, typ: JWT, kid}`,
/// claims `sub`, `aud` (a string if one audience, else an array), `iat`
/// and `exp` (whole seconds).
pub fn sign(
    key: &dyn JwtSigner,
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
    if key.key_id().is_empty() {
        return Err(JwtError::InvalidSigningKey("key ID is empty"));
    }
    let mut claims = Map::new();
    claims.insert("sub".into(), sub.as_str().into());
    claims.insert("aud".into(), aud);
    claims.insert("exp".into(), exp.into());
    claims.insert("iat".into(), iat.into());

    let mut header = Map::new();
    header.insert("typ".into(), "JWT".into());
    header.insert("alg".into(), "ES256".into());
    header.insert("kid".into(), key.key_id().into());

    let mut token = segment(&header)?;
    token.push('.');
    token.push_str(&segment(&claims)?);
    let signature = key.sign_es256(token.as_bytes())?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(token)
}

/// One JSON object as a base64url (unpadded) JWS segment.
fn segment(object: &Map<String, Value>) -> Result<String, JwtError> {
    let json = serde_json::to_vec(object).map_err(|e| JwtError::Signing(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

fn unix_seconds(t: SystemTime) -> Result<u64, JwtError> {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| JwtError::InvalidLifetime)
}
