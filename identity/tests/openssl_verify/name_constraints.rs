//! Name constraints on a CA: our verifier and `openssl verify` agree.
//!
//! Chains are our root → an rcgen-built intermediate (or root) carrying
//! `nameConstraints` → an SVID from our template for
//! `spiffe://example.org/ns/payments/sa/api` with DNS SAN `api.payments.svc`.
//! rcgen cannot write URI subtrees, so the extension is encoded here.

use meshid_identity::SvidError;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType,
};

use super::*;

/// GeneralName tags for IA5String forms.
const DNS: u8 = 0x82;
const URI: u8 = 0x86;

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match u8::try_from(body.len()) {
        Ok(n) if n < 0x80 => out.push(n),
        _ => {
            let n = u16::try_from(body.len()).unwrap();
            out.push(0x82);
            out.extend(n.to_be_bytes());
        }
    }
    out.extend_from_slice(body);
    out
}

/// DER NameConstraints with (tag, name) subtrees.
fn name_constraints_der(permitted: &[(u8, &str)], excluded: &[(u8, &str)]) -> Vec<u8> {
    let subtrees = |tag, names: &[(u8, &str)]| {
        let body: Vec<u8> = names
            .iter()
            .flat_map(|(t, n)| tlv(0x30, &tlv(*t, n.as_bytes())))
            .collect();
        if names.is_empty() {
            vec![]
        } else {
            tlv(tag, &body)
        }
    };
    let mut body = subtrees(0xa0, permitted);
    body.extend(subtrees(0xa1, excluded));
    tlv(0x30, &body)
}

/// How the constrained CA gets its nameConstraints.
enum Constraints<'a> {
    /// Hand-encoded URI / DNS subtrees: (permitted, excluded).
    Ia5(&'a [(u8, &'a str)], &'a [(u8, &'a str)]),
    /// rcgen's own encoder (directoryName, IP, ...).
    Rcgen(NameConstraints),
}

fn constrained_params(cn: &str, nc: Constraints<'_>) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "meshid");
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.subject_alt_names = vec![SanType::URI("spiffe://example.org".try_into().unwrap())];
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::hours(24);
    match nc {
        Constraints::Ia5(permitted, excluded) => {
            let der = name_constraints_der(permitted, excluded);
            let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 30], der);
            ext.set_criticality(true);
            p.custom_extensions.push(ext);
        }
        Constraints::Rcgen(nc) => p.name_constraints = Some(nc),
    }
    p
}

/// Where the constraints sit.
#[derive(Clone, Copy, Debug)]
enum On {
    Intermediate,
    Root,
}

/// Our verdict and OpenSSL's on a leaf under a CA with `nc`. OpenSSL's is
/// true for "OK"; a refusal must be for a name-constraint violation.
fn verdicts(nc: Constraints<'_>, on: On) -> (Result<SpiffeId, SvidError>, bool) {
    let now = SystemTime::now();
    let leaf_key = PrivateKey::generate_p256().unwrap();
    let issuer_key = KeyPair::generate().unwrap();
    let (root, chain_ca) = match on {
        On::Intermediate => {
            let pki = pki(now);
            let inter = constrained_params("constrained intermediate", nc)
                .signed_by(
                    &issuer_key,
                    &Issuer::from_ca_cert_der(&pki.root, pki.root_key.key_pair().unwrap()).unwrap(),
                )
                .unwrap();
            (pki.root, vec![inter.der().clone()])
        }
        On::Root => {
            let mut p = constrained_params("constrained root", nc);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let root = p.self_signed(&issuer_key).unwrap();
            (root.der().clone(), vec![root.der().clone()])
        }
    };
    let leaf = sign_svid(
        &svid_template(now),
        &leaf_key.public_key_der(),
        &chain_ca[0],
        &issuer_key,
    )
    .unwrap();

    let mut bundle = TrustBundle::new(td());
    bundle.x509_authorities.push(root.clone());
    let bundles: BundleSet = [bundle].into_iter().collect();
    let mut chain = vec![leaf.clone()];
    if matches!(on, On::Intermediate) {
        chain.extend(chain_ca.iter().cloned());
    }
    let ours = verify_x509_svid(&chain, &bundles, now).map(|v| v.spiffe_id);

    let dir = tempfile::tempdir().unwrap();
    write_pem(dir.path(), "root.pem", std::slice::from_ref(&root));
    write_pem(dir.path(), "untrusted.pem", &chain[1..]);
    write_pem(dir.path(), "leaf.pem", std::slice::from_ref(&leaf));
    let mut args = vec!["verify", "-x509_strict", "-CAfile", "root.pem"];
    if chain.len() > 1 {
        args.extend(["-untrusted", "untrusted.pem"]);
    }
    args.push("leaf.pem");
    let out = openssl(dir.path(), &args);
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || text.contains("subtree violation"),
        "openssl refused for another reason: {text}"
    );
    (ours, out.status.success())
}

#[test]
fn uri_and_dns_name_constraints_match_openssl() {
    type Case<'a> = (&'a str, &'a [(u8, &'a str)], &'a [(u8, &'a str)], bool);
    let cases: [Case<'_>; 9] = [
        ("permitted URI host", &[(URI, "example.org")], &[], true),
        (
            "permitted URI + DNS",
            &[(URI, "example.org"), (DNS, "svc")],
            &[],
            true,
        ),
        (
            "leading dot is subdomains only",
            &[(URI, ".example.org")],
            &[],
            false,
        ),
        ("other trust domain", &[(URI, "other.org")], &[], false),
        ("excluded URI host", &[], &[(URI, "example.org")], false),
        ("excluded other host", &[], &[(URI, "other.org")], true),
        (
            "DNS SAN outside",
            &[(URI, "example.org"), (DNS, ".other")],
            &[],
            false,
        ),
        ("DNS SAN excluded", &[], &[(DNS, "payments.svc")], false),
        (
            "excluded wins",
            &[(URI, "example.org")],
            &[(URI, "example.org")],
            false,
        ),
    ];
    for on in [On::Intermediate, On::Root] {
        for (what, permitted, excluded, accept) in cases {
            let (ours, openssl_ok) = verdicts(Constraints::Ia5(permitted, excluded), on);
            assert_eq!(openssl_ok, accept, "openssl on {what} ({on:?})");
            match (&ours, accept) {
                (Ok(_), true) => {}
                (
                    Err(SvidError::NameNotPermitted { .. } | SvidError::NameExcluded { .. }),
                    false,
                ) => {}
                _ => panic!("ours on {what} ({on:?}): {ours:?}"),
            }
        }
    }
}

#[test]
fn directory_name_constraints_match_openssl() {
    let dn = |org: &str| {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, org);
        dn
    };
    for (org, accept) in [("meshid", true), ("someone else", false)] {
        let nc = NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DirectoryName(dn(org))],
            excluded_subtrees: vec![],
        };
        let (ours, openssl_ok) = verdicts(Constraints::Rcgen(nc), On::Intermediate);
        assert_eq!(openssl_ok, accept, "openssl with O={org}");
        assert_eq!(ours.is_ok(), accept, "ours with O={org}: {ours:?}");
    }
}
