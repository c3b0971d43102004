use std::os::unix::fs::PermissionsExt;

use meshid_identity::KeyAlgorithm;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::*;

fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

/// The extensions a PKI team's `copy_extensions` would carry over, read
/// back from the DER: (CA, pathLen, keyCertSign, cRLSign, URI SANs).
fn requested(der: &[u8]) -> (bool, Option<u32>, bool, bool, Vec<String>) {
    let (_, csr) = X509CertificationRequest::from_der(der).unwrap();
    csr.verify_signature().unwrap();
    let mut out = (false, None, false, false, Vec::new());
    for ext in csr.requested_extensions().unwrap() {
        match ext {
            ParsedExtension::BasicConstraints(bc) => {
                out.0 = bc.ca;
                out.1 = bc.path_len_constraint;
            }
            ParsedExtension::KeyUsage(ku) => {
                out.2 = ku.key_cert_sign();
                out.3 = ku.crl_sign();
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                for n in &san.general_names {
                    if let GeneralName::URI(u) = n {
                        out.4.push((*u).to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_request_asks_for_a_pathlen_0_ca_for_the_trust_domain() {
    let key = PrivateKey::generate_p256().unwrap();
    let csr = IntermediateCsr::new(td())
        .sign(&key.key_pair().unwrap())
        .unwrap();
    let (ca, path_len, cert_sign, crl_sign, uris) = requested(&csr.der);
    assert!(ca && cert_sign && crl_sign);
    assert_eq!(path_len, Some(0));
    assert_eq!(uris, ["spiffe://example.org"]);
    let (_, parsed) = X509CertificationRequest::from_der(&csr.der).unwrap();
    let subject = parsed.certification_request_info.subject.to_string();
    assert_eq!(subject, "O=meshid, CN=meshid intermediate example.org");
    assert_eq!(
        parsed.certification_request_info.subject_pki.raw,
        key.public_key_der().as_slice()
    );
}

#[test]
fn p384_and_p256_keys_sign_and_the_subject_and_pathlen_can_be_chosen() {
    for alg in [KeyAlgorithm::EcP384, KeyAlgorithm::EcP256] {
        let key = PrivateKey::generate(alg).unwrap();
        let request = IntermediateCsr {
            path_len: 1,
            common_name: Some("payments mesh".into()),
            ..IntermediateCsr::new(td())
        };
        let csr = request.sign(&key.key_pair().unwrap()).unwrap();
        assert_eq!(requested(&csr.der).1, Some(1));
        let (_, parsed) = X509CertificationRequest::from_der(&csr.der).unwrap();
        let subject = parsed.certification_request_info.subject.to_string();
        assert!(subject.ends_with("CN=payments mesh"), "{subject}");
    }
}

#[test]
fn bad_common_names_are_refused_and_a_long_trust_domain_shortens_the_default() {
    for cn in ["", "  ", &"x".repeat(65), "a\nb"] {
        let request = IntermediateCsr {
            common_name: Some(cn.to_owned()),
            ..IntermediateCsr::new(td())
        };
        assert!(matches!(
            request.common_name(),
            Err(CsrError::CommonName(_))
        ));
    }
    let long = TrustDomain::new(&format!("{}.example.org", "a".repeat(60))).unwrap();
    assert_eq!(
        IntermediateCsr::new(long).default_common_name(),
        "meshid intermediate"
    );
}

#[test]
fn files_are_not_overwritten_without_force_and_the_key_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("mesh.key.pem");
    let csr_path = dir.path().join("mesh.csr");
    let request = IntermediateCsr::new(td());
    let key = PrivateKey::generate_p256().unwrap();
    create(&request, &key, &key_path, &csr_path, false).unwrap();
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, KEY_MODE);
    let back = PrivateKey::from_pem(&std::fs::read_to_string(&key_path).unwrap()).unwrap();
    assert_eq!(back.public_key_der(), key.public_key_der());

    // Without --force nothing is replaced, not even the CSR alone.
    std::fs::remove_file(&key_path).unwrap();
    let other = PrivateKey::generate_p256().unwrap();
    let e = create(&request, &other, &key_path, &csr_path, false).unwrap_err();
    assert!(
        matches!(e, CsrError::Exists(ref p) if p.ends_with("mesh.csr")),
        "{e}"
    );
    assert!(e.to_string().contains("pass --force"), "{e}");
    assert!(
        !key_path.exists(),
        "nothing is written when one file exists"
    );

    std::fs::write(&key_path, "old").unwrap();
    create(&request, &other, &key_path, &csr_path, true).unwrap();
    let back = PrivateKey::from_pem(&std::fs::read_to_string(&key_path).unwrap()).unwrap();
    assert_eq!(back.public_key_der(), other.public_key_der());

    let e = create(&request, &other, &csr_path, &csr_path, true).unwrap_err();
    assert!(matches!(e, CsrError::SamePath(_)), "{e}");
}
