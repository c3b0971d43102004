//! The certificate signing request a PKI team signs to make this mesh's
//! intermediate CA (`meshid ca csr`).
//!
//! [`IntermediateCsr`] asks for what a mesh intermediate needs and what
//! `openssl x509 -req -copy_extensions` or `openssl ca` with
//! `copy_extensions` carries over: basicConstraints critical CA:TRUE with a
//! pathLenConstraint (0 unless asked), keyUsage critical keyCertSign and
//! cRLSign, and the trust domain as a URI SAN (`spiffe://<td>`). It is
//! signed by anything that implements [`rcgen::SigningKey`]: a key on disk
//! ([`PrivateKey::key_pair`]) or one held by a token.
//!
//! ```
//! use meshid_ca::csr::IntermediateCsr;
//! use meshid_identity::{PrivateKey, TrustDomain};
//!
//! let key = PrivateKey::generate_p256().unwrap();
//! let request = IntermediateCsr::new(TrustDomain::new("example.org").unwrap());
//! let csr = request.sign(&key.key_pair().unwrap()).unwrap();
//! assert!(csr.pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
//! ```

use std::path::Path;

use meshid_identity::{PrivateKey, TrustDomain};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose, SanType,
};

use meshid_runtime::fs::write_atomic;

/// The longest common name X.520 allows (`ub-common-name`).
pub const MAX_COMMON_NAME: usize = 64;
/// The organization of the subject.
pub const ORGANIZATION: &str = "meshid";
/// The mode of a private key file `meshid ca csr` writes.
pub const KEY_MODE: u32 = 0o600;
/// The mode of a CSR file (public).
pub const CSR_MODE: u32 = 0o644;

/// Why a CSR could not be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// The subject common name is empty, too long or not printable.
    #[error("subject common name {0:?} is unusable; give 1-{MAX_COMMON_NAME} printable characters")]
    CommonName(String),
    /// The key could not sign the request.
    #[error("signing the CSR failed: {0}")]
    Sign(String),
    /// An output file exists and `force` was not given.
    #[error("{0} exists; refusing to overwrite it (pass --force to replace it)")]
    Exists(String),
    /// Two outputs name the same file.
    #[error("{0} is named twice; give the key and the CSR different paths")]
    SamePath(String),
    /// An output file could not be written.
    #[error("cannot write {path}: {error}; check that its directory exists and is writable")]
    Write {
        /// The file.
        path: String,
        /// Why (in the message, so not also a source).
        error: std::io::Error,
    },
}

/// A request for a mesh intermediate CA certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntermediateCsr {
    /// The trust domain whose SVIDs the intermediate will sign.
    pub trust_domain: TrustDomain,
    /// The pathLenConstraint asked for: 0 lets the intermediate sign SVIDs
    /// only (no CA below it).
    pub path_len: u8,
    /// The subject CN; `None` gives [`IntermediateCsr::default_common_name`].
    pub common_name: Option<String>,
}

/// A signed request, as DER and as a `CERTIFICATE REQUEST` PEM block.
#[derive(Debug, Clone)]
pub struct Csr {
    /// PKCS#10 DER.
    pub der: Vec<u8>,
    /// The same as PEM.
    pub pem: String,
}

// === impl IntermediateCsr ===

impl IntermediateCsr {
    /// A request for `trust_domain` with pathLen 0 and the default subject.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            path_len: 0,
            common_name: None,
        }
    }

    /// `meshid intermediate <td>`, or `meshid intermediate` when the trust
    /// domain would make it longer than [`MAX_COMMON_NAME`] (the SAN names
    /// the trust domain either way).
    pub fn default_common_name(&self) -> String {
        let full = format!("meshid intermediate {}", self.trust_domain);
        if full.len() <= MAX_COMMON_NAME {
            full
        } else {
            "meshid intermediate".to_owned()
        }
    }

    /// The subject CN the request carries.
    pub fn common_name(&self) -> Result<String, CsrError> {
        let Some(cn) = &self.common_name else {
            return Ok(self.default_common_name());
        };
        let printable = cn.chars().all(|c| !c.is_control());
        if cn.trim().is_empty() || cn.chars().count() > MAX_COMMON_NAME || !printable {
            return Err(CsrError::CommonName(cn.chars().take(80).collect()));
        }
        Ok(cn.clone())
    }

    /// The request, signed with `key` (whose public key it carries).
    pub fn sign(&self, key: &impl rcgen::SigningKey) -> Result<Csr, CsrError> {
        let sign_err = |e: rcgen::Error| CsrError::Sign(e.to_string());
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::OrganizationName, ORGANIZATION);
        subject.push(DnType::CommonName, self.common_name()?);
        params.distinguished_name = subject;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(self.path_len));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let uri = format!("spiffe://{}", self.trust_domain);
        params.subject_alt_names = vec![SanType::URI(uri.try_into().map_err(sign_err)?)];
        let csr = params.serialize_request(key).map_err(sign_err)?;
        Ok(Csr {
            pem: csr.pem().map_err(sign_err)?,
            der: csr.der().to_vec(),
        })
    }
}

/// A file to create: where, what, and with which mode.
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    /// The path.
    pub path: &'a Path,
    /// The bytes.
    pub contents: &'a [u8],
    /// The file mode ([`KEY_MODE`], [`CSR_MODE`]).
    pub mode: u32,
}

/// Writes each output atomically (temporary file, fsync, rename). Unless
/// `force`, refuses — before writing anything — when any of them exists.
pub fn write_outputs(outputs: &[Output<'_>], force: bool) -> Result<(), CsrError> {
    for (i, o) in outputs.iter().enumerate() {
        let shown = o.path.display().to_string();
        if outputs[..i].iter().any(|p| p.path == o.path) {
            return Err(CsrError::SamePath(shown));
        }
        if !force && std::fs::symlink_metadata(o.path).is_ok() {
            return Err(CsrError::Exists(shown));
        }
    }
    for o in outputs {
        write_atomic(o.path, o.contents, o.mode).map_err(|error| CsrError::Write {
            path: o.path.display().to_string(),
            error,
        })?;
    }
    Ok(())
}

/// The key and the request for it, as [`Output`]s: the key first, so a
/// CSR on disk always has its key beside it.
pub fn key_and_request<'a>(
    key_path: &'a Path,
    key_pem: &'a str,
    csr_path: &'a Path,
    csr: &'a Csr,
) -> [Output<'a>; 2] {
    [
        Output {
            path: key_path,
            contents: key_pem.as_bytes(),
            mode: KEY_MODE,
        },
        Output {
            path: csr_path,
            contents: csr.pem.as_bytes(),
            mode: CSR_MODE,
        },
    ]
}

/// Makes a key and its request and writes both (see [`write_outputs`]).
/// Returns the request.
pub fn create(
    request: &IntermediateCsr,
    key: &PrivateKey,
    key_path: &Path,
    csr_path: &Path,
    force: bool,
) -> Result<Csr, CsrError> {
    let pair = key
        .key_pair()
        .map_err(|e| CsrError::Sign(format!("the key is unusable: {e}")))?;
    let csr = request.sign(&pair)?;
    let pem = key.to_pkcs8_pem();
    write_outputs(&key_and_request(key_path, &pem, csr_path, &csr), force)?;
    Ok(csr)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
