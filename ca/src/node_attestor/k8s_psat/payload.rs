//! The `k8s_psat` evidence: `{"cluster": "<name>", "token": "<JWT>"}`, and
//! the token's claims read without verifying it, only to refuse an expired
//! token or one for another audience with a clear error before anything is
//! asked of the cluster.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::node_attestor::AttestError;

pub use meshid_identity::k8s_psat::Payload;
use meshid_identity::k8s_psat::{self, MAX_PAYLOAD_LEN as MAX_PAYLOAD, MAX_TOKEN_LEN as MAX_TOKEN};

/// Clock skew allowed when checking `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// Parses and bounds the payload.
pub fn parse(payload: &[u8]) -> Result<Payload, AttestError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(AttestError::Malformed(
            "k8s_psat payload is larger than 16 KiB",
        ));
    }
    // serde would also take a JSON array for the struct: only an object is evidence.
    if !is_object(payload) {
        return Err(AttestError::Malformed(
            "k8s_psat payload must be the JSON object {\"cluster\": …, \"token\": …} and nothing else",
        ));
    }
    let p: Payload = serde_json::from_slice(payload).map_err(|_| {
        AttestError::Malformed(
            "k8s_psat payload must be the JSON object {\"cluster\": …, \"token\": …} and nothing else",
        )
    })?;
    if !k8s_psat::is_valid_cluster(&p.cluster) {
        return Err(AttestError::Malformed(
            "k8s_psat cluster must be 1 to 63 characters of a-z, 0-9 and '-'",
        ));
    }
    if p.token.is_empty() || p.token.len() > MAX_TOKEN {
        return Err(AttestError::Malformed(
            "k8s_psat token must be 1 byte to 8 KiB",
        ));
    }
    Ok(p)
}

/// Whether JSON text starts as an object.
fn is_object(json: &[u8]) -> bool {
    json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// `aud`: one string or a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Audiences {
    /// A single audience.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Audiences {
    /// Whether `audience` is among them.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(a) => a == audience,
            Self::Many(v) => v.iter().any(|a| a == audience),
        }
    }

    /// Them, for an error.
    pub fn list(&self) -> Vec<String> {
        match self {
            Self::One(a) => vec![a.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// The claims of a token, not verified.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Unverified {
    /// `exp`, unix seconds.
    pub exp: Option<i64>,
    /// `aud`.
    #[serde(default)]
    pub aud: Option<Audiences>,
}

/// Reads the claims of a compact JWS without verifying it.
pub fn unverified_claims(token: &str) -> Result<Unverified, AttestError> {
    const NOT_JWT: AttestError = AttestError::Malformed(
        "k8s_psat token is not a JWT (header.claims.signature, base64url, JSON claims)",
    );
    let mut parts = token.split('.');
    let (Some(_), Some(claims), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(NOT_JWT);
    };
    let bytes = URL_SAFE_NO_PAD.decode(claims).map_err(|_| NOT_JWT)?;
    if !is_object(&bytes) {
        return Err(NOT_JWT);
    }
    serde_json::from_slice(&bytes).map_err(|_| NOT_JWT)
}

/// A unix time in seconds as a [`SystemTime`] (clamped at the epoch).
pub fn unix_time(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// RFC 3339 of a time, for errors.
pub fn show(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Unverified {
    /// Refuses a token past its `exp` (with [`LEEWAY`]) or not for
    /// `audience`; returns its expiry.
    pub fn precheck(&self, now: SystemTime, audience: &str) -> Result<SystemTime, AttestError> {
        let exp = self
            .exp
            .map(unix_time)
            .ok_or(AttestError::Malformed("k8s_psat token has no exp claim"))?;
        if exp + LEEWAY <= now {
            return Err(AttestError::Refused(format!(
                "token expired at {}; the kubelet rotates projected tokens, retry with the new one",
                show(exp)
            )));
        }
        match &self.aud {
            Some(aud) if aud.contains(audience) => Ok(exp),
            other => Err(AttestError::Refused(format!(
                "token is not for audience {audience} (its audiences: {:?}); set the projected \
                 token's audience to {audience}",
                other.as_ref().map(Audiences::list).unwrap_or_default()
            ))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256"}"#),
            URL_SAFE_NO_PAD.encode(claims.as_bytes())
        )
    }

    fn malformed(payload: &[u8]) -> &'static str {
        match parse(payload) {
            Err(AttestError::Malformed(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn payloads_parse_and_are_bounded() {
        let p = parse(br#"{"cluster": "prod-1", "token": "a.b.c"}"#).unwrap();
        assert_eq!(p.cluster, "prod-1");
        assert_eq!(p.token, "a.b.c");
        let big = format!(
            r#"{{"cluster": "p", "token": "{}"}}"#,
            "a".repeat(MAX_PAYLOAD)
        );
        assert!(malformed(big.as_bytes()).contains("16 KiB"));
        let long = format!(
            r#"{{"cluster": "p", "token": "{}"}}"#,
            "a".repeat(MAX_TOKEN + 1)
        );
        assert!(malformed(long.as_bytes()).contains("8 KiB"));
        assert!(malformed(br#"{"cluster": "p", "token": ""}"#).contains("8 KiB"));
        for bad in [
            &br#"{"cluster": "p", "token": "t", "node": "n"}"#[..],
            br#"{"cluster": "p"}"#,
            br#"["p", "t"]"#,
            b"not json",
        ] {
            assert!(malformed(bad).contains("nothing else"), "{bad:?}");
        }
        for bad in ["", "Prod", "a_b", "a/b", &"a".repeat(64)] {
            let text = format!(r#"{{"cluster": "{bad}", "token": "t"}}"#);
            assert!(malformed(text.as_bytes()).contains("a-z, 0-9"), "{bad}");
        }
    }

    #[test]
    fn unverified_exp_and_audience_are_prechecked() {
        let now = unix_time(1_900_000_000);
        let ok =
            unverified_claims(&jwt(r#"{"exp": 1900000100, "aud": ["x", "meshid-ca"]}"#)).unwrap();
        assert_eq!(
            ok.precheck(now, "meshid-ca").unwrap(),
            unix_time(1_900_000_100)
        );
        let one = unverified_claims(&jwt(r#"{"exp": 1900000100, "aud": "meshid-ca"}"#)).unwrap();
        assert!(one.precheck(now, "meshid-ca").is_ok());
        // Within the leeway still passes; past it is refused with the time.
        let late = unverified_claims(&jwt(r#"{"exp": 1899999980, "aud": "meshid-ca"}"#)).unwrap();
        assert!(late.precheck(now, "meshid-ca").is_ok());
        let old = unverified_claims(&jwt(r#"{"exp": 1899999000, "aud": "meshid-ca"}"#)).unwrap();
        match old.precheck(now, "meshid-ca") {
            Err(AttestError::Refused(m)) => {
                assert!(
                    m.starts_with("token expired at 2030-03-17T17:30:00Z"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        let other = unverified_claims(&jwt(r#"{"exp": 1900000100, "aud": ["api"]}"#)).unwrap();
        match other.precheck(now, "meshid-ca") {
            Err(AttestError::Refused(m)) => {
                assert!(m.starts_with("token is not for audience meshid-ca"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let no_exp = unverified_claims(&jwt(r#"{"aud": "meshid-ca"}"#)).unwrap();
        assert!(matches!(
            no_exp.precheck(now, "meshid-ca"),
            Err(AttestError::Malformed(_))
        ));
        for bad in [
            "abc",
            "a.b",
            "a.b.c.d",
            "a.!!.c",
            &format!("a.{}.c", URL_SAFE_NO_PAD.encode("[1]")),
        ] {
            assert!(unverified_claims(bad).is_err(), "{bad}");
        }
    }
}
