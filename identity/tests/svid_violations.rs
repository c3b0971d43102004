//! Each X.509-SVID rule, broken on purpose, yields its own `SvidError`.
//!
//! Certificates are built with rcgen directly (not through our profile
//! builders) so every rule can be violated one at a time.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use meshid_identity::x509::{CaTemplate, self_signed_ca, sign_ca};
use meshid_identity::{
    BundleSet, IdError, SpiffeId, SvidError, TrustBundle, TrustDomain, verify_x509_svid,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;

const DAY: Duration = Duration::from_secs(86_400);

struct Ca {
    cert: CertificateDer<'static>,
    key: KeyPair,
}

fn now() -> SystemTime {
    // A fixed instant keeps the tests independent of the wall clock.
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).unwrap()
}

fn ca_template(trust_domain: &str, cn: &str, path_len: Option<u8>) -> CaTemplate {
    CaTemplate {
        trust_domain: td(trust_domain),
        common_name: cn.to_string(),
        not_before: now() - DAY,
        not_after: now() + 30 * DAY,
        path_len,
    }
}

fn root(trust_domain: &str, cn: &str, path_len: Option<u8>) -> Ca {
    let key = KeyPair::generate().unwrap();
    let cert = self_signed_ca(&ca_template(trust_domain, cn, path_len), &key).unwrap();
    Ca { cert, key }
}

fn intermediate(parent: &Ca, trust_domain: &str, cn: &str, path_len: Option<u8>) -> Ca {
    let key = KeyPair::generate().unwrap();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let cert = sign_ca(
        &ca_template(trust_domain, cn, path_len),
        &spki,
        &parent.cert,
        &parent.key,
    )
    .unwrap();
    Ca { cert, key }
}

fn bundles(roots: &[(&str, &Ca)]) -> BundleSet {
    let mut set = BundleSet::new();
    for (name, ca) in roots {
        let mut b = set
            .get(&td(name))
            .cloned()
            .unwrap_or_else(|| TrustBundle::new(td(name)));
        b.x509_authorities.push(ca.cert.clone());
        set.insert(b);
    }
    set
}

/// A leaf that follows the profile; tests then break one field.
fn good_leaf(uri: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::OrganizationName, "test");
    p.subject_alt_names = vec![SanType::URI(uri.to_string().try_into().unwrap())];
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.not_before = (now() - DAY).into();
    p.not_after = (now() + DAY).into();
    p.use_authority_key_identifier_extension = true;
    p
}

fn issue(params: &CertificateParams, issuer: &Ca) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_ca_cert_der(&issuer.cert, &issuer.key).unwrap();
    params.signed_by(&key, &issuer).unwrap().der().clone()
}

fn verify(chain: &[CertificateDer<'static>], set: &BundleSet) -> Result<SpiffeId, SvidError> {
    verify_x509_svid(chain, set, now()).map(|v| v.spiffe_id)
}

#[test]
fn conforming_leaf_directly_under_root_is_accepted() {
    let root = root("example.org", "root", None);
    let leaf = issue(&good_leaf("spiffe://example.org/ns/a/sa/b"), &root);
    let v = verify_x509_svid(&[leaf], &bundles(&[("example.org", &root)]), now()).unwrap();
    assert_eq!(v.spiffe_id.as_str(), "spiffe://example.org/ns/a/sa/b");
    assert_eq!(v.not_after, now() + DAY);
}

#[test]
fn two_uri_sans() {
    let root = root("example.org", "root", None);
    let mut p = good_leaf("spiffe://example.org/a");
    p.subject_alt_names.push(SanType::URI(
        "spiffe://example.org/b".to_string().try_into().unwrap(),
    ));
    let leaf = issue(&p, &root);
    let set = bundles(&[("example.org", &root)]);
    assert_eq!(verify(&[leaf], &set), Err(SvidError::MultipleUriSans));
}

#[test]
fn no_uri_san() {
    let root = root("example.org", "root", None);
    let mut p = good_leaf("spiffe://example.org/a");
    p.subject_alt_names = vec![SanType::DnsName("a.example.org".try_into().unwrap())];
    let leaf = issue(&p, &root);
    let set = bundles(&[("example.org", &root)]);
    assert_eq!(verify(&[leaf], &set), Err(SvidError::NoUriSan));
}

#[test]
fn non_spiffe_uri() {
    let root = root("example.org", "root", None);
    let leaf = issue(&good_leaf("https://example.org/a"), &root);
    let set = bundles(&[("example.org", &root)]);
    assert_eq!(verify(&[leaf], &set), Err(SvidError::NotSpiffe));
}

#[test]
fn malformed_spiffe_id() {
    let root = root("example.org", "root", None);
    let leaf = issue(&good_leaf("spiffe://example.org/a/../b"), &root);
    let set = bundles(&[("example.org", &root)]);
    assert_eq!(
        verify(&[leaf], &set),
        Err(SvidError::InvalidId(IdError::DotSegment))
    );
}

#[test]
fn leaf_named_after_trust_domain() {
    let root = root("example.org", "root", None);
    let leaf = issue(&good_leaf("spiffe://example.org"), &root);
    let set = bundles(&[("example.org", &root)]);
    assert_eq!(verify(&[leaf], &set), Err(SvidError::LeafIsTrustDomain));
}

#[test]
fn ca_leaf() {
    let root = root("example.org", "root", None);
    let mut p = good_leaf("spiffe://example.org/a");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let leaf = issue(&p, &root);
    let set = bundles(&[("example.org", &root)]);
    assert_eq!(verify(&[leaf], &set), Err(SvidError::LeafIsCa));
}

#[test]
fn no_key_usage_or_no_digital_signature() {
    let root = root("example.org", "root", None);
    let set = bundles(&[("example.org", &root)]);
    let mut p = good_leaf("spiffe://example.org/a");
    p.key_usages.clear();
    let leaf = issue(&p, &root);
    assert_eq!(
        verify(&[leaf], &set),
        Err(SvidError::MissingDigitalSignature)
    );
    p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    let leaf = issue(&p, &root);
    assert_eq!(
        verify(&[leaf], &set),
        Err(SvidError::MissingDigitalSignature)
    );
}

#[test]
fn key_cert_sign_or_crl_sign_on_leaf() {
    let root = root("example.org", "root", None);
    let set = bundles(&[("example.org", &root)]);
    for extra in [KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign] {
        let mut p = good_leaf("spiffe://example.org/a");
        p.key_usages.push(extra);
        let leaf = issue(&p, &root);
        assert_eq!(verify(&[leaf], &set), Err(SvidError::LeafHasCertSign));
    }
}

#[test]
fn expired_and_not_yet_valid() {
    let root = root("example.org", "root", None);
    let set = bundles(&[("example.org", &root)]);
    let leaf = issue(&good_leaf("spiffe://example.org/a"), &root);
    let later = now() + 2 * DAY;
    assert_eq!(
        verify_x509_svid(std::slice::from_ref(&leaf), &set, later),
        Err(SvidError::Expired {
            position: 0,
            not_after: now() + DAY
        })
    );
    let earlier = now() - 2 * DAY;
    assert_eq!(
        verify_x509_svid(&[leaf], &set, earlier),
        Err(SvidError::NotYetValid {
            position: 0,
            not_before: now() - DAY
        })
    );
}

#[test]
fn expired_intermediate_is_reported_at_its_position() {
    let root = root("example.org", "root", None);
    let inter = intermediate(&root, "example.org", "inter", None);
    let set = bundles(&[("example.org", &root)]);
    let mut p = good_leaf("spiffe://example.org/a");
    p.not_after = (now() + 60 * DAY).into();
    let leaf = issue(&p, &inter);
    // The intermediate expires after 30 days, the leaf after 60.
    let at = now() + 45 * DAY;
    assert!(matches!(
        verify_x509_svid(&[leaf, inter.cert], &set, at),
        Err(SvidError::Expired { position: 1, .. })
    ));
}

#[test]
fn unknown_trust_domain() {
    let root = root("example.org", "root", None);
    let leaf = issue(&good_leaf("spiffe://other.org/a"), &root);
    let set = bundles(&[("example.org", &root)]);
    assert_eq!(
        verify(&[leaf], &set),
        Err(SvidError::UnknownTrustDomain(td("other.org")))
    );
}

#[test]
fn leaf_signed_by_another_trust_domains_root() {
    // other.org is federated, but its leaf was signed by example.org's root:
    // a trust domain may only vouch for its own IDs.
    let root = root("example.org", "root", None);
    let other = root_named("other.org", "other root");
    let leaf = issue(&good_leaf("spiffe://other.org/a"), &root);
    let set = bundles(&[("example.org", &root), ("other.org", &other)]);
    assert_eq!(verify(&[leaf], &set), Err(SvidError::NoPathToRoot));
}

fn root_named(trust_domain: &str, cn: &str) -> Ca {
    root(trust_domain, cn, None)
}

#[test]
fn signed_by_foreign_root_with_the_same_name() {
    let trusted = root("example.org", "root", None);
    let foreign = root("example.org", "root", None);
    let leaf = issue(&good_leaf("spiffe://example.org/a"), &foreign);
    let set = bundles(&[("example.org", &trusted)]);
    assert_eq!(verify(&[leaf], &set), Err(SvidError::BadSignature));
}

#[test]
fn signed_by_foreign_root_with_another_name() {
    let trusted = root("example.org", "root", None);
    let foreign = root("example.org", "evil root", None);
    let leaf = issue(&good_leaf("spiffe://example.org/a"), &foreign);
    let set = bundles(&[("example.org", &trusted)]);
    assert_eq!(verify(&[leaf], &set), Err(SvidError::NoPathToRoot));
}

#[test]
fn intermediate_that_is_not_a_ca() {
    let root = root("example.org", "root", None);
    let mut p = good_leaf("spiffe://example.org");
    p.distinguished_name.push(DnType::CommonName, "not a ca");
    p.key_usages.push(KeyUsagePurpose::KeyCertSign);
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_ca_cert_der(&root.cert, &root.key).unwrap();
    let fake = Ca {
        cert: p.signed_by(&key, &issuer).unwrap().der().clone(),
        key,
    };
    let leaf = issue(&good_leaf("spiffe://example.org/a"), &fake);
    let set = bundles(&[("example.org", &root)]);
    assert_eq!(
        verify(&[leaf, fake.cert], &set),
        Err(SvidError::IntermediateNotCa)
    );
}

#[test]
fn path_len_exceeded() {
    let root = root("example.org", "root", Some(0));
    let inter = intermediate(&root, "example.org", "inter", None);
    let leaf = issue(&good_leaf("spiffe://example.org/a"), &inter);
    let set = bundles(&[("example.org", &root)]);
    assert_eq!(
        verify(&[leaf, inter.cert], &set),
        Err(SvidError::PathLenExceeded)
    );
}

#[test]
fn intermediates_are_followed_in_any_order() {
    let root = root("example.org", "root", Some(2));
    let a = intermediate(&root, "example.org", "a", Some(1));
    let b = intermediate(&a, "example.org", "b", Some(0));
    let leaf = issue(&good_leaf("spiffe://example.org/a"), &b);
    let set = bundles(&[("example.org", &root)]);
    let id = verify(&[leaf, a.cert, b.cert], &set).unwrap();
    assert_eq!(id.as_str(), "spiffe://example.org/a");
}

#[test]
fn chain_too_long() {
    let root = root("example.org", "root", None);
    let mut chain = Vec::new();
    let mut parent = intermediate(&root, "example.org", "i0", None);
    for i in 1..8 {
        let next = intermediate(&parent, "example.org", &format!("i{i}"), None);
        chain.push(parent.cert.clone());
        parent = next;
    }
    chain.push(parent.cert.clone());
    chain.reverse();
    let leaf = issue(&good_leaf("spiffe://example.org/a"), &parent);
    chain.insert(0, leaf);
    assert_eq!(chain.len(), 9);
    let set = bundles(&[("example.org", &root)]);
    assert_eq!(verify(&chain, &set), Err(SvidError::TooLong));
    // Seven intermediates (eight certificates) is within the limit.
    chain.pop();
    assert!(matches!(verify(&chain, &set), Err(SvidError::NoPathToRoot)));
}

#[test]
fn empty_garbage_and_oversize_input() {
    let set = BundleSet::new();
    assert_eq!(verify(&[], &set), Err(SvidError::EmptyChain));
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
    assert_eq!(verify(&[garbage], &set), Err(SvidError::Malformed));
    let huge = CertificateDer::from(vec![0u8; 20_000]);
    assert_eq!(verify(&[huge], &set), Err(SvidError::TooLong));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn corrupted_leaf_is_never_accepted(pos in 0usize..4096, xor in 1u8..=255) {
        let root = root("example.org", "root", None);
        let set = bundles(&[("example.org", &root)]);
        let mut der = issue(&good_leaf("spiffe://example.org/a"), &root).to_vec();
        // Stay inside the signed TBSCertificate: the parser tolerates some
        // non-DER tags in the unsigned wrapper (outer and AlgorithmIdentifier).
        let i = 4 + pos % (der.len() - 104);
        der[i] ^= xor;
        proptest::prop_assert!(verify(&[CertificateDer::from(der)], &set).is_err());
    }
}

/// A root from rcgen with `nc` (our templates write no name constraints).
fn constrained_root(nc: rcgen::NameConstraints) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::OrganizationName, "meshid");
    p.distinguished_name
        .push(DnType::CommonName, "constrained root");
    p.subject_alt_names = vec![SanType::URI("spiffe://example.org".try_into().unwrap())];
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = (now() - DAY).into();
    p.not_after = (now() + 30 * DAY).into();
    p.name_constraints = Some(nc);
    let cert = p.self_signed(&key).unwrap().der().clone();
    Ca { cert, key }
}

#[test]
fn root_name_constraints_bind_intermediates_and_leaves() {
    use rcgen::{DistinguishedName, GeneralSubtree, NameConstraints};
    let dn = |cn: &str| {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "meshid");
        dn.push(DnType::CommonName, cn);
        dn
    };
    // The intermediate's own subject is excluded: reported at position 1.
    let root = constrained_root(NameConstraints {
        permitted_subtrees: vec![],
        excluded_subtrees: vec![GeneralSubtree::DirectoryName(dn("sub"))],
    });
    let inter = intermediate(&root, "example.org", "sub", None);
    let leaf = issue(&good_leaf("spiffe://example.org/a"), &inter);
    let set = bundles(&[("example.org", &root)]);
    let err = verify(&[leaf, inter.cert.clone()], &set).unwrap_err();
    assert!(
        matches!(
            err,
            SvidError::NameExcluded {
                position: 1,
                ca: 2,
                ..
            }
        ),
        "{err:?}"
    );
    // A different intermediate passes, and a DNS SAN outside the permitted
    // DNS subtree fails at the leaf.
    let root = constrained_root(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName("example.org".into())],
        excluded_subtrees: vec![GeneralSubtree::DirectoryName(dn("sub"))],
    });
    let inter = intermediate(&root, "example.org", "other", None);
    let set = bundles(&[("example.org", &root)]);
    let mut p = good_leaf("spiffe://example.org/a");
    p.subject_alt_names
        .push(SanType::DnsName("api.example.org".try_into().unwrap()));
    let leaf = issue(&p, &inter);
    assert!(verify(&[leaf, inter.cert.clone()], &set).is_ok());
    p.subject_alt_names
        .push(SanType::DnsName("db.other.test".try_into().unwrap()));
    let leaf = issue(&p, &inter);
    let err = verify(&[leaf, inter.cert.clone()], &set).unwrap_err();
    assert!(
        matches!(&err, SvidError::NameNotPermitted { position: 0, ca: 2, name } if name.contains("db.other.test")),
        "{err:?}"
    );
}
