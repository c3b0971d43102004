//! Test PKI: a self-signed CA per trust domain and SVIDs written as PEM files.
#![allow(dead_code)]

use meshid_identity::x509::{self_signed_ca, sign_svid};
use meshid_identity::{CaTemplate, PrivateKey, SpiffeId, SvidTemplate, TrustDomain};
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub struct Ca {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKey,
}

/// Paths of one SVID's PEM files.
#[derive(Clone, Debug)]
pub struct SvidFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub bundle: PathBuf,
}

impl Ca {
    pub fn new(td: &str) -> Self {
        let key = PrivateKey::generate_p256().unwrap();
        let now = SystemTime::now();
        let t = CaTemplate {
            trust_domain: TrustDomain::new(td).unwrap(),
            common_name: format!("{td} test root"),
            not_before: now,
            not_after: now + Duration::from_secs(3600),
            path_len: None,
        };
        let cert = self_signed_ca(&t, &key.key_pair().unwrap()).unwrap();
        Self { cert, key }
    }

    /// Issues an SVID for `id` and returns (leaf DER, key).
    pub fn issue(&self, id: &str) -> (CertificateDer<'static>, PrivateKey) {
        let key = PrivateKey::generate_p256().unwrap();
        let now = SystemTime::now();
        let t = SvidTemplate {
            spiffe_id: SpiffeId::parse(id).unwrap(),
            dns_names: vec![],
            not_before: now,
            not_after: now + Duration::from_secs(3600),
        };
        let cert = sign_svid(
            &t,
            &key.public_key_der(),
            &self.cert,
            &self.key.key_pair().unwrap(),
        )
        .unwrap();
        (cert, key)
    }

    pub fn bundle_pem(&self) -> String {
        meshid_identity::x509::to_pem(std::slice::from_ref(&self.cert))
    }

    /// Writes `<name>.pem`, `<name>.key` and `<name>-bundle.pem` into `dir`.
    pub fn write_svid(&self, dir: &Path, name: &str, id: &str) -> SvidFiles {
        let (cert, key) = self.issue(id);
        let files = SvidFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
            bundle: dir.join(format!("{name}-bundle.pem")),
        };
        write_pair(&files, &cert, &key);
        std::fs::write(&files.bundle, self.bundle_pem()).unwrap();
        files
    }

    /// A leaf with two URI SANs (invalid per the X.509-SVID spec).
    pub fn issue_two_uris(&self, dir: &Path) -> SvidFiles {
        let key = PrivateKey::generate_p256().unwrap();
        let kp = key.key_pair().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.subject_alt_names = vec![
            rcgen::SanType::URI(
                rcgen::string::Ia5String::try_from("spiffe://example.org/a").unwrap(),
            ),
            rcgen::SanType::URI(
                rcgen::string::Ia5String::try_from("spiffe://example.org/b").unwrap(),
            ),
        ];
        p.is_ca = rcgen::IsCa::ExplicitNoCa;
        p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let ca_kp = self.key.key_pair().unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_der(&self.cert, &ca_kp).unwrap();
        let cert = p.signed_by(&kp, &issuer).unwrap();
        let files = SvidFiles {
            cert: dir.join("two-uris.pem"),
            key: dir.join("two-uris.key"),
            bundle: dir.join("two-uris-bundle.pem"),
        };
        write_pair(&files, cert.der(), &key);
        std::fs::write(&files.bundle, self.bundle_pem()).unwrap();
        files
    }
}

/// Rewrites cert + key of `files` (key first, then cert).
pub fn write_pair(files: &SvidFiles, cert: &CertificateDer<'_>, key: &PrivateKey) {
    std::fs::write(&files.key, key.to_pkcs8_pem().as_bytes()).unwrap();
    std::fs::write(
        &files.cert,
        meshid_identity::x509::to_pem(std::slice::from_ref(cert)),
    )
    .unwrap();
}
