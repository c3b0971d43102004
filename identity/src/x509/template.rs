//! Certificate templates and signing, per the X.509-SVID profile.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SanType, SerialNumber, SigningKey, SubjectPublicKeyInfo,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::CertificateDer;

use crate::{SpiffeId, TrustDomain};

/// How far the signing functions move `notBefore` into the past, so peers
/// whose clocks run slightly behind accept a fresh certificate.
///
/// Callers pass the real issuance time; the functions subtract this.
pub const BACKDATE: Duration = Duration::from_secs(10);

/// Organization written into every subject this crate builds.
const ORGANIZATION: &str = "meshid";
/// Longest CommonName X.520 allows.
const MAX_CN_LEN: usize = 64;

/// What goes into an X.509-SVID leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvidTemplate {
    /// The identity, written as the single URI SAN.
    pub spiffe_id: SpiffeId,
    /// Optional DNS SANs; the first also becomes the subject CN.
    pub dns_names: Vec<String>,
    /// Start of validity (moved back by [`BACKDATE`] when signing).
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}

/// What goes into a signing (CA) certificate of a trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaTemplate {
    /// The trust domain; `spiffe://<td>` is written as the URI SAN.
    pub trust_domain: TrustDomain,
    /// Subject CommonName (at most 64 bytes).
    pub common_name: String,
    /// Start of validity (moved back by [`BACKDATE`] when signing).
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// basicConstraints pathLenConstraint, if any.
    pub path_len: Option<u8>,
}

/// Why a certificate could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum X509Error {
    /// `not_after` is not later than `not_before`.
    #[error("certificate validity is empty: not_after must be later than not_before")]
    EmptyValidity,
    /// A time cannot be written into a certificate.
    #[error("certificate time is out of range (must be between years 1950 and 9999)")]
    TimeOutOfRange,
    /// The CommonName is empty or longer than 64 bytes.
    #[error("common name must be 1 to 64 bytes, got {0}")]
    CommonName(usize),
    /// A DNS name is not acceptable.
    #[error("DNS SAN {0:?} is not a valid name")]
    DnsName(String),
    /// The subject public key is not DER SubjectPublicKeyInfo of a supported type.
    #[error("subject public key is not usable: {0}")]
    PublicKey(String),
    /// The issuer certificate could not be read.
    #[error("issuer certificate is not a readable DER certificate")]
    IssuerCert,
    /// The system random generator failed.
    #[error("random number generator failed")]
    Random,
    /// rcgen failed to encode or sign.
    #[error("could not sign the certificate: {0}")]
    Sign(String),
}

/// A self-signed root for `t`, signed with `key`.
pub fn self_signed_ca(
    t: &CaTemplate,
    key: &impl SigningKey,
) -> Result<CertificateDer<'static>, X509Error> {
    let params = ca_params(t)?;
    let cert = params.self_signed(key).map_err(sign_err)?;
    Ok(cert.der().clone())
}

/// An intermediate signing certificate for the key `subject_spki_der`,
/// issued by `issuer_cert_der` / `issuer_key`.
pub fn sign_ca(
    t: &CaTemplate,
    subject_spki_der: &[u8],
    issuer_cert_der: &[u8],
    issuer_key: &impl SigningKey,
) -> Result<CertificateDer<'static>, X509Error> {
    sign(ca_params(t)?, subject_spki_der, issuer_cert_der, issuer_key)
}

/// An X.509-SVID leaf for the key `subject_spki_der`, issued by
/// `issuer_cert_der` / `issuer_key`.
pub fn sign_svid(
    t: &SvidTemplate,
    subject_spki_der: &[u8],
    issuer_cert_der: &[u8],
    issuer_key: &impl SigningKey,
) -> Result<CertificateDer<'static>, X509Error> {
    sign(
        svid_params(t)?,
        subject_spki_der,
        issuer_cert_der,
        issuer_key,
    )
}

fn sign(
    params: CertificateParams,
    subject_spki_der: &[u8],
    issuer_cert_der: &[u8],
    issuer_key: &impl SigningKey,
) -> Result<CertificateDer<'static>, X509Error> {
    let subject = SubjectPublicKeyInfo::from_der(subject_spki_der)
        .map_err(|e| X509Error::PublicKey(e.to_string()))?;
    let issuer_cert = CertificateDer::from(issuer_cert_der);
    let issuer =
        Issuer::from_ca_cert_der(&issuer_cert, issuer_key).map_err(|_| X509Error::IssuerCert)?;
    let cert = params.signed_by(&subject, &issuer).map_err(sign_err)?;
    Ok(cert.der().clone())
}

fn svid_params(t: &SvidTemplate) -> Result<CertificateParams, X509Error> {
    let mut p = base_params(t.not_before, t.not_after)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    let cn = t
        .dns_names
        .first()
        .map(String::as_str)
        .or(Some(t.spiffe_id.as_str()))
        .filter(|cn| cn.len() <= MAX_CN_LEN);
    if let Some(cn) = cn {
        dn.push(DnType::CommonName, cn);
    }
    p.distinguished_name = dn;
    p.subject_alt_names = vec![uri_san(&t.spiffe_id)?];
    for name in &t.dns_names {
        let dns = name
            .clone()
            .try_into()
            .map_err(|_| X509Error::DnsName(name.clone()))?;
        p.subject_alt_names.push(SanType::DnsName(dns));
    }
    p.is_ca = IsCa::ExplicitNoCa;
    // digitalSignature only: the one usage X.509-SVID §4.3 requires, and all
    // TLS 1.3 / ECDHE needs. keyEncipherment is wrong for EC and Ed25519 keys
    // (RFC 5480 §3, RFC 8410 §5) and keyAgreement for RSA and Ed25519, while
    // the CA signs EC, RSA and Ed25519 keys with this one template.
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(p)
}

fn ca_params(t: &CaTemplate) -> Result<CertificateParams, X509Error> {
    if t.common_name.is_empty() || t.common_name.len() > MAX_CN_LEN {
        return Err(X509Error::CommonName(t.common_name.len()));
    }
    let mut p = base_params(t.not_before, t.not_after)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, t.common_name.as_str());
    p.distinguished_name = dn;
    p.subject_alt_names = vec![uri_san(&t.trust_domain.id())?];
    p.is_ca = IsCa::Ca(match t.path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    // X.509-SVID §4.3 and Appendix A: signing certificates set keyCertSign
    // (and may set cRLSign); digitalSignature is for leaves only.
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(p)
}

/// Validity, a random serial and key identifiers.
fn base_params(
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertificateParams, X509Error> {
    if not_after <= not_before {
        return Err(X509Error::EmptyValidity);
    }
    let not_before = not_before
        .checked_sub(BACKDATE)
        .ok_or(X509Error::TimeOutOfRange)?;
    let mut p = CertificateParams::default();
    p.not_before = asn1_time(not_before)?;
    p.not_after = asn1_time(not_after)?;
    p.serial_number = Some(random_serial()?);
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

fn uri_san(id: &SpiffeId) -> Result<SanType, X509Error> {
    let uri = id
        .as_str()
        .to_owned()
        .try_into()
        .map_err(|e: rcgen::Error| X509Error::Sign(e.to_string()))?;
    Ok(SanType::URI(uri))
}

/// 128 random bits, top bit clear (positive) and second bit set (full length).
fn random_serial() -> Result<SerialNumber, X509Error> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| X509Error::Random)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn asn1_time(t: SystemTime) -> Result<time::OffsetDateTime, X509Error> {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).map_err(|_| X509Error::TimeOutOfRange)?,
        Err(e) => -i64::try_from(e.duration().as_secs()).map_err(|_| X509Error::TimeOutOfRange)?,
    };
    let dt =
        time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| X509Error::TimeOutOfRange)?;
    if !(1950..=9999).contains(&dt.year()) {
        return Err(X509Error::TimeOutOfRange);
    }
    Ok(dt)
}

fn sign_err(e: rcgen::Error) -> X509Error {
    X509Error::Sign(e.to_string())
}
