//! `split_chain` on real certificates, on their damaged forms and on noise.

#![allow(clippy::unwrap_used)]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use rustls_pki_types::CertificateDer;

use super::*;
use crate::TrustDomain;
use crate::x509::{CaTemplate, self_signed_ca};

/// Three distinct self-signed CA certificates.
fn certs() -> Vec<CertificateDer<'static>> {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    ["a.example", "b.example", "c.example"]
        .iter()
        .map(|td| {
            let key = rcgen::KeyPair::generate().unwrap();
            let t = CaTemplate {
                trust_domain: TrustDomain::new(td).unwrap(),
                common_name: format!("{td} root"),
                not_before: now,
                not_after: now + Duration::from_secs(3600),
                path_len: None,
            };
            self_signed_ca(&t, &key).unwrap()
        })
        .collect()
}

static POOL: LazyLock<Vec<CertificateDer<'static>>> = LazyLock::new(certs);

fn joined(certs: &[CertificateDer<'_>]) -> Vec<u8> {
    certs.iter().flat_map(|c| c.iter().copied()).collect()
}

#[test]
fn splits_concatenated_certificates_in_order() {
    let certs = certs();
    assert_eq!(split_chain(&joined(&certs)).unwrap(), certs);
    assert_eq!(split_chain(&certs[1]).unwrap(), &certs[1..2]);
    assert_eq!(split_chain(&[]).unwrap(), Vec::<CertificateDer>::new());
}

#[test]
fn trailing_garbage_truncation_and_other_der_are_refused() {
    let certs = certs();
    let all = joined(&certs);
    let second = certs[0].len();

    let mut trailing = all.clone();
    trailing.push(0);
    let third = second + certs[1].len();
    assert_eq!(
        split_chain(&trailing),
        Err(ChainError::Malformed {
            index: 3,
            offset: all.len()
        })
    );
    assert_eq!(
        split_chain(&all[..all.len() - 1]),
        Err(ChainError::Malformed {
            index: 2,
            offset: third
        })
    );
    // A well-formed DER SEQUENCE that is not a certificate.
    let mut not_a_cert = certs[0].to_vec();
    not_a_cert.extend_from_slice(&[0x30, 0x03, 0x02, 0x01, 0x01]);
    assert_eq!(
        split_chain(&not_a_cert),
        Err(ChainError::Malformed {
            index: 1,
            offset: second
        })
    );
    // A length that runs past the end of the input.
    assert!(split_chain(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
}

#[test]
fn more_than_the_limit_is_refused() {
    let one = certs().remove(0);
    let many: Vec<_> = std::iter::repeat_n(one, MAX_SPLIT_CERTS + 1).collect();
    assert_eq!(split_chain(&joined(&many)), Err(ChainError::TooMany));
    assert_eq!(
        split_chain(&joined(&many[..MAX_SPLIT_CERTS]))
            .unwrap()
            .len(),
        MAX_SPLIT_CERTS
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(certs) = split_chain(&bytes) {
            prop_assert_eq!(joined(&certs), bytes);
        }
    }

    #[test]
    fn noise_after_a_valid_prefix_never_panics(
        picks in proptest::collection::vec(0usize..3, 0..6),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let chosen: Vec<_> = picks.iter().map(|i| POOL[*i].clone()).collect();
        let mut input = joined(&chosen);
        prop_assert_eq!(split_chain(&input).unwrap(), chosen.clone());
        input.extend_from_slice(&noise);
        match split_chain(&input) {
            Ok(certs) => prop_assert_eq!(joined(&certs), input),
            Err(ChainError::Malformed { index, offset }) => {
                prop_assert!(index >= chosen.len());
                prop_assert!(offset >= joined(&chosen).len());
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }
}
