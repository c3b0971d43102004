//! The facts about one certificate of an upstream chain that start-up
//! checks need, read once, with the file it came from.

use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;

use super::super::UpstreamError;

/// One parsed certificate and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct ChainCert {
    pub der: CertificateDer<'static>,
    /// The file it was read from.
    pub file: String,
    /// The subject, readable (`CN=…, O=…`).
    pub subject: String,
    pub subject_raw: Vec<u8>,
    pub issuer_raw: Vec<u8>,
    pub spki: Vec<u8>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// basicConstraints CA:true.
    pub ca: bool,
    /// keyUsage keyCertSign.
    pub cert_sign: bool,
    pub path_len: Option<u32>,
}

impl ChainCert {
    /// Reads `der`; `index` counts certificates within `file` for messages.
    pub fn parse(
        der: CertificateDer<'static>,
        file: &str,
        index: usize,
    ) -> Result<Self, UpstreamError> {
        let invalid = |what: &str| UpstreamError::Invalid {
            path: file.to_owned(),
            reason: format!("certificate {index} {what}; export it again as PEM X.509"),
        };
        let (_, c) =
            x509_parser::parse_x509_certificate(&der).map_err(|_| invalid("is unreadable"))?;
        let bc = c
            .basic_constraints()
            .map_err(|_| invalid("has a malformed basicConstraints extension"))?;
        let ku = c
            .key_usage()
            .map_err(|_| invalid("has a malformed keyUsage extension"))?;
        let time = |secs: i64| {
            u64::try_from(secs).map_or(SystemTime::UNIX_EPOCH, |s| {
                SystemTime::UNIX_EPOCH + Duration::from_secs(s)
            })
        };
        Ok(Self {
            file: file.to_owned(),
            subject: c.subject().to_string(),
            subject_raw: c.subject().as_raw().to_vec(),
            issuer_raw: c.issuer().as_raw().to_vec(),
            spki: c.tbs_certificate.subject_pki.raw.to_vec(),
            not_before: time(c.validity().not_before.timestamp()),
            not_after: time(c.validity().not_after.timestamp()),
            ca: bc.as_ref().is_some_and(|b| b.value.ca),
            cert_sign: ku.is_some_and(|k| k.value.key_cert_sign()),
            path_len: bc.and_then(|b| b.value.path_len_constraint),
            der: der.clone(),
        })
    }

    /// Subject and issuer are the same name (a root, or a self-issued CA).
    pub fn self_issued(&self) -> bool {
        self.subject_raw == self.issuer_raw
    }

    /// `issuer`'s subject is this certificate's issuer.
    pub fn named_issuer(&self, issuer: &ChainCert) -> bool {
        self.issuer_raw == issuer.subject_raw
    }

    /// `certificate "CN=…"`, for messages (which name the file apart).
    pub fn describe(&self) -> String {
        format!("certificate \"{}\"", self.subject)
    }
}
