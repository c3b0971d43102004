//! The per-connection verify callback and the [`PeerSlot`] its verdict
//! lands in.
//!
//! OpenSSL calls the callback for every certificate depth and every error
//! it finds. There is no trust store in these contexts, so OpenSSL's own
//! verdict is always "unknown issuer"; the callback ignores it, lets every
//! depth above the leaf pass and decides once, at depth 0, with
//! [`PeerCheck::check`] over the chain OpenSSL assembled (leaf first).

use std::fmt;
use std::sync::{Arc, OnceLock};

use openssl::ssl::{SslRef, SslVerifyMode};
use openssl::x509::{X509StoreContextRef, X509VerifyResult};
use rustls_pki_types::CertificateDer;

use crate::tls::{PeerCheck, PeerRejection};
use crate::verify::{SvidError, VerifiedSvid};

/// The X.509 verify errors a rejection is reported with; each makes
/// OpenSSL send the alert rustls sends for the same rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AlertError {
    /// `X509_V_ERR_CERT_HAS_EXPIRED` (10): `certificate_expired`.
    Expired = 10,
    /// `X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY` (20): `unknown_ca`.
    UnknownIssuer = 20,
    /// `X509_V_ERR_CERT_SIGNATURE_FAILURE` (7): `decrypt_error`.
    SignatureFailure = 7,
    /// `X509_V_ERR_CERT_REJECTED` (28): `bad_certificate`.
    Rejected = 28,
    /// `X509_V_ERR_UNSPECIFIED` (1): `certificate_unknown`.
    Unspecified = 1,
}

/// Where one connection's peer verdict is kept: set by the verify callback
/// during a full handshake, or by [`accept`](super::accept) /
/// [`connect`](super::connect) when a resumed session skipped it.
#[derive(Clone)]
pub struct PeerSlot {
    verdict: Arc<OnceLock<Result<VerifiedSvid, PeerRejection>>>,
    check: Arc<PeerCheck>,
    peer_required: bool,
}

// === impl PeerSlot ===

impl PeerSlot {
    pub(crate) fn new(check: Arc<PeerCheck>, peer_required: bool) -> Self {
        Self {
            verdict: Arc::default(),
            check,
            peer_required,
        }
    }

    /// The verdict on the peer's certificate, once one was presented and
    /// checked.
    pub fn get(&self) -> Option<&Result<VerifiedSvid, PeerRejection>> {
        self.verdict.get()
    }

    /// The peer's verified SVID, if it presented one that passed.
    pub fn verified(&self) -> Option<&VerifiedSvid> {
        self.get().and_then(|r| r.as_ref().ok())
    }

    /// The rejection, if the peer's certificate was refused.
    pub fn rejection(&self) -> Option<&PeerRejection> {
        self.get().and_then(|r| r.as_ref().err())
    }

    /// The rules the peer is checked with.
    pub(crate) fn check(&self) -> &PeerCheck {
        &self.check
    }

    /// Whether a connection without a peer certificate must fail.
    pub(crate) fn peer_required(&self) -> bool {
        self.peer_required
    }

    /// The verdict on `chain`, computed now unless one is already stored.
    pub(crate) fn decide(
        &self,
        chain: impl FnOnce() -> Result<Vec<CertificateDer<'static>>, PeerRejection>,
    ) -> &Result<VerifiedSvid, PeerRejection> {
        self.verdict
            .get_or_init(|| chain().and_then(|c| self.check.check(&c)))
    }
}

impl fmt::Debug for PeerSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerSlot")
            .field("verdict", &self.get())
            .field("check", &self.check)
            .field("peer_required", &self.peer_required)
            .finish()
    }
}

/// Installs the callback on `ssl`: `mode` says whether to ask for (and
/// require) the peer's certificate.
pub(crate) fn install(ssl: &mut SslRef, mode: SslVerifyMode, slot: PeerSlot) {
    ssl.set_verify_callback(mode, move |_openssl_verdict, ctx| {
        if ctx.error_depth() > 0 {
            // OpenSSL's errors above the leaf are not ours to report; a
            // stale one would be the session's verify result.
            ctx.set_error(X509VerifyResult::OK);
            return true;
        }
        match slot.decide(|| store_chain(ctx)) {
            Ok(_) => {
                ctx.set_error(X509VerifyResult::OK);
                true
            }
            Err(rejection) => {
                ctx.set_error(alert_error(rejection).result());
                false
            }
        }
    });
}

/// The chain OpenSSL assembled from what the peer sent, leaf first.
fn store_chain(ctx: &X509StoreContextRef) -> Result<Vec<CertificateDer<'static>>, PeerRejection> {
    let Some(chain) = ctx.chain() else {
        return Err(PeerRejection::Svid(SvidError::EmptyChain));
    };
    chain
        .iter()
        .map(|c| c.to_der().map(CertificateDer::from))
        .collect::<Result<_, _>>()
        .map_err(|_| PeerRejection::Svid(SvidError::Malformed))
}

/// The X.509 error whose alert is the one rustls sends for the same
/// rejection (so the peer sees the same alert from either backend).
fn alert_error(rejection: &PeerRejection) -> AlertError {
    match rejection.reason() {
        // rustls sends certificate_expired for "not yet valid" too.
        "cert_expired" | "cert_not_yet_valid" => AlertError::Expired,
        "unknown_issuer" => AlertError::UnknownIssuer,
        "bad_signature" => AlertError::SignatureFailure,
        "bad_encoding" => AlertError::Rejected,
        _ => AlertError::Unspecified,
    }
}

impl AlertError {
    #[allow(unsafe_code)]
    fn result(self) -> X509VerifyResult {
        // SAFETY: every variant is a defined X509_V_ERR_* number of
        // OpenSSL 3 (x509_vfy.h), which is all from_raw asks of its input.
        unsafe { X509VerifyResult::from_raw(self as i32) }
    }
}
