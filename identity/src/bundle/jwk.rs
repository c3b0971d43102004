//! Public keys as JSON Web Keys (RFC 7517/7518) and as DER
//! SubjectPublicKeyInfo, and the conversions between the two.
//!
//! Supported: EC P-256 and P-384 (`kty: EC`) and RSA (`kty: RSA`), the key
//! types the SPIFFE JWT-SVID spec allows.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::BundleError;
use crate::der;

/// A public key reduced to the parameters a JWK carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyParams {
    /// EC key; `point` is the uncompressed SEC1 point `0x04 || X || Y`.
    Ec { curve: Curve, point: Vec<u8> },
    /// RSA key; big-endian modulus and exponent without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// The elliptic curves a JWK in a SPIFFE bundle may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
}

/// The JWK members meshid reads; other members are ignored.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct JwkFields {
    pub(crate) kty: Option<String>,
    pub(crate) crv: Option<String>,
    pub(crate) x: Option<String>,
    pub(crate) y: Option<String>,
    pub(crate) n: Option<String>,
    pub(crate) e: Option<String>,
    pub(crate) kid: Option<String>,
    #[serde(rename = "use")]
    pub(crate) use_: Option<String>,
    pub(crate) x5c: Option<Vec<String>>,
    /// meshid's end of trust for a JWT key (Unix seconds).
    pub(crate) exp: Option<u64>,
}

/// Builds the DER SubjectPublicKeyInfo of an EC P-256 key from its JWK
/// coordinates `x` and `y` (32 raw bytes each, not base64).
pub fn p256_spki_der_from_coordinates(x: &[u8], y: &[u8]) -> Result<Vec<u8>, BundleError> {
    if x.len() != 32 || y.len() != 32 {
        return Err(BundleError::InvalidKey(
            "P-256 coordinates must be 32 bytes each",
        ));
    }
    let point = [&[0x04], x, y].concat();
    Ok(KeyParams::Ec {
        curve: Curve::P256,
        point,
    }
    .to_spki_der())
}

/// Reads the JWK coordinates `(x, y)` of an EC P-256 key from its DER
/// SubjectPublicKeyInfo.
pub fn p256_coordinates_from_spki_der(spki: &[u8]) -> Result<([u8; 32], [u8; 32]), BundleError> {
    match KeyParams::from_spki_der(spki)? {
        KeyParams::Ec {
            curve: Curve::P256,
            point,
        } => {
            let mut x = [0u8; 32];
            let mut y = [0u8; 32];
            x.copy_from_slice(&point[1..33]);
            y.copy_from_slice(&point[33..65]);
            Ok((x, y))
        }
        _ => Err(BundleError::UnsupportedKey("not an EC P-256 key".into())),
    }
}

// === impl Curve ===

impl Curve {
    fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
        }
    }

    fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }

    fn oid_der(self) -> &'static [u8] {
        match self {
            Self::P256 => der::OID_P256,
            Self::P384 => der::OID_P384,
        }
    }
}

// === impl KeyParams ===

impl KeyParams {
    /// Parses a DER SubjectPublicKeyInfo (nothing may follow it).
    pub(crate) fn from_spki_der(spki: &[u8]) -> Result<Self, BundleError> {
        let (rest, info) = SubjectPublicKeyInfo::from_der(spki)
            .map_err(|_| BundleError::InvalidKey("not a DER SubjectPublicKeyInfo"))?;
        if !rest.is_empty() {
            return Err(BundleError::InvalidKey(
                "trailing bytes after SubjectPublicKeyInfo",
            ));
        }
        Self::from_spki(&info)
    }

    /// Reads the key parameters out of a parsed SubjectPublicKeyInfo.
    pub(crate) fn from_spki(info: &SubjectPublicKeyInfo<'_>) -> Result<Self, BundleError> {
        let alg = &info.algorithm.algorithm;
        if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve_oid = info
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .ok_or(BundleError::InvalidKey("EC key without a named curve"))?;
            let curve = if curve_oid == OID_EC_P256 {
                Curve::P256
            } else if curve_oid == OID_NIST_EC_P384 {
                Curve::P384
            } else {
                return Err(BundleError::UnsupportedKey(format!("EC curve {curve_oid}")));
            };
            let point = info.subject_public_key.data.to_vec();
            check_point(curve, &point)?;
            Ok(Self::Ec { curve, point })
        } else if *alg == OID_PKCS1_RSAENCRYPTION {
            match info.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
                    Self::rsa(rsa.modulus.to_vec(), rsa.exponent.to_vec())
                }
                _ => Err(BundleError::InvalidKey("malformed RSA public key")),
            }
        } else {
            Err(BundleError::UnsupportedKey(format!("key algorithm {alg}")))
        }
    }

    fn rsa(n: Vec<u8>, e: Vec<u8>) -> Result<Self, BundleError> {
        let n = der::strip_leading_zeros(&n).to_vec();
        let e = der::strip_leading_zeros(&e).to_vec();
        if n.is_empty() || e.is_empty() {
            return Err(BundleError::InvalidKey(
                "RSA modulus and exponent must be non-zero",
            ));
        }
        Ok(Self::Rsa { n, e })
    }

    /// Reads the key parameters of a JWK (`kty`, `crv`, `x`, `y`, `n`, `e`).
    pub(crate) fn from_jwk(jwk: &JwkFields) -> Result<Self, BundleError> {
        let kty = jwk
            .kty
            .as_deref()
            .ok_or(BundleError::MissingKeyParameter("kty"))?;
        match kty {
            "EC" => {
                let crv = jwk
                    .crv
                    .as_deref()
                    .ok_or(BundleError::MissingKeyParameter("crv"))?;
                let curve = match crv {
                    "P-256" => Curve::P256,
                    "P-384" => Curve::P384,
                    other => {
                        return Err(BundleError::UnsupportedKey(format!("EC curve {other:?}")));
                    }
                };
                let x = b64url_field(jwk.x.as_deref(), "x")?;
                let y = b64url_field(jwk.y.as_deref(), "y")?;
                let point = [&[0x04], x.as_slice(), y.as_slice()].concat();
                check_point(curve, &point)?;
                Ok(Self::Ec { curve, point })
            }
            "RSA" => {
                let n = b64url_field(jwk.n.as_deref(), "n")?;
                let e = b64url_field(jwk.e.as_deref(), "e")?;
                Self::rsa(n, e)
            }
            other => Err(BundleError::UnsupportedKey(format!("kty {other:?}"))),
        }
    }

    /// Writes the key parameters as JWK members into `jwk`.
    pub(crate) fn write_jwk(&self, jwk: &mut Map<String, Value>) {
        match self {
            Self::Ec { curve, point } => {
                let len = curve.coordinate_len();
                jwk.insert("kty".into(), "EC".into());
                jwk.insert("crv".into(), curve.name().into());
                jwk.insert("x".into(), URL_SAFE_NO_PAD.encode(&point[1..=len]).into());
                jwk.insert("y".into(), URL_SAFE_NO_PAD.encode(&point[1 + len..]).into());
            }
            Self::Rsa { n, e } => {
                jwk.insert("kty".into(), "RSA".into());
                jwk.insert("n".into(), URL_SAFE_NO_PAD.encode(n).into());
                jwk.insert("e".into(), URL_SAFE_NO_PAD.encode(e).into());
            }
        }
    }

    /// The key as DER SubjectPublicKeyInfo.
    pub(crate) fn to_spki_der(&self) -> Vec<u8> {
        match self {
            Self::Ec { curve, point } => der::ec_spki(curve.oid_der(), point),
            Self::Rsa { n, e } => der::rsa_spki(n, e),
        }
    }
}

fn check_point(curve: Curve, point: &[u8]) -> Result<(), BundleError> {
    let ok = point.len() == 1 + 2 * curve.coordinate_len() && point.first() == Some(&0x04);
    if ok {
        Ok(())
    } else {
        Err(BundleError::InvalidKey(match curve {
            Curve::P256 => "P-256 key must be an uncompressed point with 32-byte coordinates",
            Curve::P384 => "P-384 key must be an uncompressed point with 48-byte coordinates",
        }))
    }
}

fn b64url_field(value: Option<&str>, field: &'static str) -> Result<Vec<u8>, BundleError> {
    let value = value.ok_or(BundleError::MissingKeyParameter(field))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| BundleError::InvalidBase64 { field })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn p256_coordinates_round_trip_through_spki() {
        let x: Vec<u8> = (0..32).collect();
        let y: Vec<u8> = (32..64).collect();
        let spki = p256_spki_der_from_coordinates(&x, &y).unwrap();
        let (x2, y2) = p256_coordinates_from_spki_der(&spki).unwrap();
        assert_eq!((x2.as_slice(), y2.as_slice()), (x.as_slice(), y.as_slice()));
    }

    #[test]
    fn rsa_spki_round_trips() {
        let n = [&[0xc1u8], [7u8; 255].as_slice()].concat();
        let params = KeyParams::rsa(n.clone(), vec![1, 0, 1]).unwrap();
        let back = KeyParams::from_spki_der(&params.to_spki_der()).unwrap();
        assert_eq!(
            back,
            KeyParams::Rsa {
                n,
                e: vec![1, 0, 1]
            }
        );
    }

    #[test]
    fn short_coordinates_are_rejected() {
        assert!(matches!(
            p256_spki_der_from_coordinates(&[1; 31], &[2; 32]),
            Err(BundleError::InvalidKey(_))
        ));
        let jwk = JwkFields {
            kty: Some("EC".into()),
            crv: Some("P-256".into()),
            x: Some(URL_SAFE_NO_PAD.encode([1u8; 32])),
            y: Some(URL_SAFE_NO_PAD.encode([1u8; 33])),
            ..JwkFields::default()
        };
        assert!(matches!(
            KeyParams::from_jwk(&jwk),
            Err(BundleError::InvalidKey(_))
        ));
    }

    #[test]
    fn garbage_spki_is_rejected() {
        assert!(KeyParams::from_spki_der(b"\x30\x03\x02\x01\x01").is_err());
        assert!(KeyParams::from_spki_der(&[]).is_err());
    }
}
