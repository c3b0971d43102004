//! The few DER encodings meshid writes itself: SubjectPublicKeyInfo for EC
//! and RSA public keys (bundles' JWKs) and the P-256 AlgorithmIdentifier
//! (SEC1 keys rewrapped as PKCS#8). Writing them by hand keeps the encoder
//! tiny and exact; reading DER is left to x509-parser.

/// DER of OID 1.2.840.10045.2.1 (id-ecPublicKey), tag and length included.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// DER of OID 1.2.840.10045.3.1.7 (P-256 / prime256v1).
pub(crate) const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of OID 1.3.132.0.34 (P-384 / secp384r1).
pub(crate) const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
/// DER of OID 1.2.840.113549.1.1.1 (rsaEncryption).
const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const NULL: &[u8] = &[0x05, 0x00];

pub(crate) const SEQUENCE: u8 = 0x30;
const BIT_STRING: u8 = 0x03;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OCTET_STRING: u8 = 0x04;

/// SubjectPublicKeyInfo of an EC key on the curve named by `curve_oid`,
/// `point` being the uncompressed SEC1 point (`0x04 || X || Y`).
pub(crate) fn ec_spki(curve_oid: &[u8], point: &[u8]) -> Vec<u8> {
    spki(&ec_algorithm(curve_oid), point)
}

/// AlgorithmIdentifier `{ id-ecPublicKey, <curve> }`.
pub(crate) fn ec_algorithm(curve_oid: &[u8]) -> Vec<u8> {
    tlv(SEQUENCE, &[OID_EC_PUBLIC_KEY, curve_oid].concat())
}

/// AlgorithmIdentifier `{ rsaEncryption, NULL }`.
pub(crate) fn rsa_algorithm() -> Vec<u8> {
    tlv(SEQUENCE, &[OID_RSA, NULL].concat())
}

/// SubjectPublicKeyInfo of an RSA key from its big-endian modulus and
/// exponent (leading zeros allowed; they are normalised).
pub(crate) fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let alg = rsa_algorithm();
    let key = tlv(
        SEQUENCE,
        &[unsigned_integer(n), unsigned_integer(e)].concat(),
    );
    spki(&alg, &key)
}

fn spki(alg: &[u8], key: &[u8]) -> Vec<u8> {
    // BIT STRING content: a leading "unused bits" byte (0), then the key.
    let mut bits = Vec::with_capacity(key.len() + 1);
    bits.push(0);
    bits.extend_from_slice(key);
    tlv(SEQUENCE, &[alg.to_vec(), tlv(BIT_STRING, &bits)].concat())
}

fn unsigned_integer(bytes: &[u8]) -> Vec<u8> {
    let trimmed = strip_leading_zeros(bytes);
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(INTEGER, &content)
}

/// `bytes` without leading zero bytes (an unsigned big-endian integer).
pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// One DER TLV with a definite length.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let be = len.to_be_bytes();
        let significant = strip_leading_zeros(&be);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn p256_spki_has_the_well_known_prefix() {
        let point = [[0x04].as_slice(), &[1u8; 64]].concat();
        let der = ec_spki(OID_P256, &point);
        assert_eq!(der.len(), 91);
        assert_eq!(
            &der[..27],
            &[
                0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
                0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04
            ]
        );
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        let der = tlv(SEQUENCE, &[0u8; 300]);
        assert_eq!(&der[..4], &[0x30, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn integers_stay_positive() {
        assert_eq!(
            unsigned_integer(&[0x00, 0x80]),
            vec![0x02, 0x02, 0x00, 0x80]
        );
        assert_eq!(
            unsigned_integer(&[0x01, 0x00, 0x01]),
            vec![0x02, 0x03, 0x01, 0x00, 0x01]
        );
        assert_eq!(unsigned_integer(&[]), vec![0x02, 0x01, 0x00]);
    }
}
