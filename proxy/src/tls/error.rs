//! Short, bounded labels for TLS handshake failures (metrics, logs), the
//! same for both backends: rustls errors are classified here, OpenSSL's
//! come labelled from `meshid_identity::openssl` (see `backend_reason`).

use meshid_identity::SpiffeId;
use meshid_identity::tls::PeerNotAllowed;
use rustls::{AlertDescription, CertificateError, Error, PeerIncompatible};
use std::io;

/// A stable metric label for why a handshake failed.
///
/// `peer_id_mismatch`: the peer's SVID verified but its SPIFFE ID is not
/// the one expected ([`peer_not_allowed`] says which it was);
/// `tls_version`: no TLS version in common (e.g. a TLS 1.2-only client
/// while `tls.min_version` is 1.3).
pub fn handshake_error_reason(e: &io::Error) -> &'static str {
    if let Some(reason) = backend::reason(e) {
        return reason;
    }
    let Some(tls) = rustls_error(e) else {
        return match e.kind() {
            io::ErrorKind::TimedOut => "timeout",
            io::ErrorKind::UnexpectedEof => "eof",
            io::ErrorKind::ConnectionReset => "reset",
            _ => "io",
        };
    };
    match tls {
        Error::NoCertificatesPresented => "no_client_cert",
        Error::InvalidCertificate(c) => match c {
            CertificateError::Expired => "cert_expired",
            CertificateError::NotValidYet => "cert_not_yet_valid",
            CertificateError::UnknownIssuer => "unknown_issuer",
            CertificateError::BadSignature => "bad_signature",
            CertificateError::BadEncoding => "bad_encoding",
            _ if peer_not_allowed(e).is_some() => "peer_id_mismatch",
            _ => "invalid_cert",
        },
        Error::AlertReceived(AlertDescription::BadCertificate)
        | Error::AlertReceived(AlertDescription::UnknownCA)
        | Error::AlertReceived(AlertDescription::CertificateRequired) => "peer_rejected_cert",
        Error::AlertReceived(AlertDescription::ProtocolVersion) => "tls_version",
        Error::AlertReceived(_) => "alert_received",
        Error::NoApplicationProtocol => "no_alpn",
        Error::PeerIncompatible(
            PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls12NotOfferedOrEnabled
            | PeerIncompatible::SupportedVersionsExtensionRequired
            | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
            | PeerIncompatible::ServerDoesNotSupportTls12Or13,
        ) => "tls_version",
        Error::PeerIncompatible(_) => "incompatible",
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. } => "protocol",
        _ => "other",
    }
}

/// The SPIFFE ID a peer presented when the handshake failed because it is
/// not the expected one (its SVID itself verified).
pub fn peer_not_allowed(e: &io::Error) -> Option<&SpiffeId> {
    if let Some(p) = backend::peer_not_allowed(e) {
        return Some(&p.presented);
    }
    PeerNotAllowed::in_error(rustls_error(e)?).map(|p| &p.presented)
}

/// True if `e` is a TLS handshake failure (of either backend), not a
/// failure to connect or a timeout.
pub fn is_handshake_error(e: &io::Error) -> bool {
    rustls_error(e).is_some() || backend::reason(e).is_some()
}

fn rustls_error(e: &io::Error) -> Option<&Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<Error>())
}

/// The errors of the OpenSSL backend, which labels them itself.
#[cfg(feature = "openssl")]
mod backend {
    use meshid_identity::openssl::HandshakeError;
    use meshid_identity::tls::{PeerNotAllowed, PeerRejection};
    use std::io;

    fn handshake_error(e: &io::Error) -> Option<&HandshakeError> {
        e.get_ref().and_then(|i| i.downcast_ref::<HandshakeError>())
    }

    pub(super) fn reason(e: &io::Error) -> Option<&'static str> {
        handshake_error(e).map(|h| h.reason)
    }

    pub(super) fn peer_not_allowed(e: &io::Error) -> Option<&PeerNotAllowed> {
        match handshake_error(e)?.rejection.as_ref()? {
            PeerRejection::NotAllowed(p) => Some(p),
            _ => None,
        }
    }
}

/// Without the OpenSSL backend every TLS error is a rustls one.
#[cfg(not(feature = "openssl"))]
mod backend {
    use meshid_identity::tls::PeerNotAllowed;
    use std::io;

    pub(super) fn reason(_: &io::Error) -> Option<&'static str> {
        None
    }

    pub(super) fn peer_not_allowed(_: &io::Error) -> Option<&PeerNotAllowed> {
        None
    }
}
