//! Handshakes over tokio-openssl, and why one failed.
//!
//! [`accept`] and [`connect`] run the handshake (bound its time with a
//! timeout around them), then make sure the peer was checked: a resumed
//! session skips the verify callback, so its stored chain is checked now,
//! against the current bundles and peer rule. A failure is a
//! [`HandshakeError`] whose `reason` is the label the rustls path uses.

use std::fmt;
use std::io;
use std::pin::Pin;

use openssl::error::ErrorStack;
use openssl::ssl::{self, ErrorCode, Ssl, SslRef};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

use super::PeerSlot;
use crate::tls::PeerRejection;
use crate::verify::SvidError;

/// `ERR_LIB_SSL`: errors of libssl itself.
const LIB_SSL: i32 = 20;
/// `SSL_AD_REASON_OFFSET`: a received alert `n` is reported as reason `1000 + n`.
const ALERT_OFFSET: i32 = 1000;

/// Why a handshake failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HandshakeError {
    /// The metrics label, the same as the rustls path's:
    /// `no_client_cert`, a [`PeerRejection::reason`], `peer_rejected_cert`,
    /// `tls_version`, `no_alpn`, `incompatible`, `alert_received`,
    /// `protocol`, `eof`, `reset`, `timeout`, `io` or `other`.
    pub reason: &'static str,
    /// Our verdict on the peer's certificate, when that failed the handshake.
    pub rejection: Option<PeerRejection>,
    /// What happened, for logs.
    pub message: String,
    io_kind: Option<io::ErrorKind>,
}

/// Runs the server side of a handshake on `io` with an [`Ssl`] and slot
/// from [`ServerContext::ssl`](super::ServerContext::ssl).
pub async fn accept<S>(ssl: Ssl, slot: &PeerSlot, io: S) -> Result<SslStream<S>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = SslStream::new(ssl, io).map_err(HandshakeError::setup)?;
    let done = Pin::new(&mut stream).accept().await;
    finish(stream, slot, done, "no_client_cert")
}

/// Runs the client side of a handshake on `io` with an [`Ssl`] and slot
/// from [`ClientContext::ssl`](super::ClientContext::ssl).
pub async fn connect<S>(ssl: Ssl, slot: &PeerSlot, io: S) -> Result<SslStream<S>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = SslStream::new(ssl, io).map_err(HandshakeError::setup)?;
    let done = Pin::new(&mut stream).connect().await;
    finish(stream, slot, done, "invalid_cert")
}

/// The label of an I/O error from an OpenSSL stream, handshake or later
/// (e.g. a TLS 1.3 client learning on its first read that the server
/// refused its certificate): a [`HandshakeError`]'s reason, libssl's
/// reason, or the I/O error kind (`eof`, `reset`, `timeout`, `io`).
pub fn reason_of(e: &io::Error) -> &'static str {
    let inner = e.get_ref();
    if let Some(h) = inner.and_then(|i| i.downcast_ref::<HandshakeError>()) {
        return h.reason;
    }
    if let Some(s) = inner.and_then(|i| i.downcast_ref::<ssl::Error>())
        && let Some(reason) = s.ssl_error().and_then(stack_reason)
    {
        return reason;
    }
    io_reason(e.kind())
}

fn io_reason(kind: io::ErrorKind) -> &'static str {
    match kind {
        io::ErrorKind::UnexpectedEof => "eof",
        io::ErrorKind::ConnectionReset => "reset",
        io::ErrorKind::TimedOut => "timeout",
        _ => "io",
    }
}

/// The peer's certificates after a handshake, leaf first (empty if it
/// presented none).
pub fn peer_chain(ssl: &SslRef) -> Vec<CertificateDer<'static>> {
    chain_of(ssl).unwrap_or_default()
}

fn chain_of(ssl: &SslRef) -> Result<Vec<CertificateDer<'static>>, PeerRejection> {
    let malformed = |_| PeerRejection::Svid(SvidError::Malformed);
    let Some(leaf) = ssl.peer_certificate() else {
        return Ok(Vec::new());
    };
    let leaf = leaf.to_der().map_err(malformed)?;
    // A resumed client session (restored from its DER form) holds only
    // the server's leaf: its chain is the one cached with it.
    if ssl.session_reused()
        && let Some(offered) = super::session::offered_chain(ssl)
        && offered
            .first()
            .is_some_and(|l| l.as_ref() == leaf.as_slice())
    {
        return Ok(offered.to_vec());
    }
    let mut out = vec![CertificateDer::from(leaf)];
    // A client's stack starts with the leaf; a server's may not.
    for (i, c) in ssl.peer_cert_chain().into_iter().flatten().enumerate() {
        let der = c.to_der().map_err(malformed)?;
        if i == 0 && der == out[0].as_ref() {
            continue;
        }
        out.push(CertificateDer::from(der));
    }
    Ok(out)
}

/// The handshake's outcome, with the peer checked if the callback did not
/// run (a resumed session) and a missing peer certificate refused.
fn finish<S>(
    stream: SslStream<S>,
    slot: &PeerSlot,
    done: Result<(), ssl::Error>,
    no_peer: &'static str,
) -> Result<SslStream<S>, HandshakeError> {
    if let Err(e) = done {
        return Err(HandshakeError::failed(&e, slot));
    }
    let chain = chain_of(stream.ssl());
    if matches!(&chain, Ok(c) if c.is_empty()) {
        if slot.peer_required() {
            return Err(HandshakeError::plain(
                no_peer,
                "the peer presented no certificate".to_owned(),
            ));
        }
        return Ok(stream);
    }
    match slot.decide(|| chain) {
        Ok(_) => Ok(stream),
        Err(rejection) => Err(HandshakeError::rejected(rejection.clone())),
    }
}

// === impl HandshakeError ===

impl HandshakeError {
    fn plain(reason: &'static str, message: String) -> Self {
        Self {
            reason,
            rejection: None,
            message,
            io_kind: None,
        }
    }

    fn rejected(rejection: PeerRejection) -> Self {
        Self {
            reason: rejection.reason(),
            message: format!("refused the peer's certificate: {rejection}"),
            rejection: Some(rejection),
            io_kind: None,
        }
    }

    fn setup(e: ErrorStack) -> Self {
        Self::plain("other", format!("cannot start the TLS stream: {e}"))
    }

    fn failed(e: &ssl::Error, slot: &PeerSlot) -> Self {
        if let Some(rejection) = slot.rejection() {
            return Self::rejected(rejection.clone());
        }
        if let Some(io) = e.io_error() {
            let reason = io_reason(io.kind());
            return Self {
                io_kind: Some(io.kind()),
                ..Self::plain(reason, format!("TLS handshake: {io}"))
            };
        }
        let reason = e
            .ssl_error()
            .and_then(stack_reason)
            .unwrap_or(match e.code() {
                ErrorCode::ZERO_RETURN | ErrorCode::SYSCALL => "eof",
                _ => "other",
            });
        Self::plain(reason, format!("TLS handshake: {e}"))
    }
}

/// The label of the first libssl error on the stack that has one.
fn stack_reason(stack: &ErrorStack) -> Option<&'static str> {
    stack
        .errors()
        .iter()
        .filter(|e| e.library_code() == LIB_SSL)
        .find_map(|e| ssl_reason(e.reason_code()))
}

/// libssl's `SSL_R_*` reason codes, labelled as the rustls path does.
fn ssl_reason(code: i32) -> Option<&'static str> {
    Some(match code {
        // PEER_DID_NOT_RETURN_A_CERTIFICATE
        199 => "no_client_cert",
        // An alert from the peer: bad_certificate, unknown_ca, certificate_required.
        1042 | 1048 | 1116 => "peer_rejected_cert",
        // protocol_version alert
        1070 => "tls_version",
        c if (ALERT_OFFSET..ALERT_OFFSET + 256).contains(&c) => "alert_received",
        // NO_APPLICATION_PROTOCOL
        235 => "no_alpn",
        // UNSUPPORTED_PROTOCOL, UNSUPPORTED_SSL_VERSION, NO_PROTOCOLS_AVAILABLE,
        // VERSION_TOO_LOW, VERSION_TOO_HIGH, BAD_PROTOCOL_VERSION_NUMBER
        258 | 259 | 191 | 396 | 166 | 116 => "tls_version",
        // NO_SHARED_CIPHER, NO_SUITABLE_KEY_SHARE, NO_SHARED_GROUPS,
        // NO_SHARED_SIGNATURE_ALGORITHMS, NO_SUITABLE_SIGNATURE_ALGORITHM,
        // MISSING_SIGALGS_EXTENSION
        193 | 101 | 410 | 376 | 118 | 112 => "incompatible",
        // UNEXPECTED_EOF_WHILE_READING
        294 => "eof",
        // CERTIFICATE_VERIFY_FAILED without a verdict of ours (fail closed)
        134 => "invalid_cert",
        // UNEXPECTED_MESSAGE, UNEXPECTED_RECORD, WRONG_VERSION_NUMBER,
        // HTTP_REQUEST, HTTPS_PROXY_REQUEST, RECORD_LENGTH_MISMATCH,
        // PACKET_LENGTH_TOO_LONG, LENGTH_MISMATCH, BAD_PACKET, BAD_PACKET_LENGTH,
        // DECRYPTION_FAILED_OR_BAD_RECORD_MAC, BAD_EXTENSION, BAD_HANDSHAKE_LENGTH
        244 | 245 | 267 | 156 | 155 | 213 | 198 | 159 | 240 | 115 | 281 | 110 | 332 => "protocol",
        _ => return None,
    })
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.rejection
            .as_ref()
            .map(|r| r as &(dyn std::error::Error + 'static))
    }
}

impl From<HandshakeError> for io::Error {
    /// An `io::Error` that still holds the [`HandshakeError`]
    /// (`get_ref()` and `downcast_ref`).
    fn from(e: HandshakeError) -> Self {
        let kind = e.io_kind.unwrap_or(match e.reason {
            "eof" => io::ErrorKind::UnexpectedEof,
            "reset" => io::ErrorKind::ConnectionReset,
            "timeout" => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::InvalidData,
        });
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_keeps_the_handshake_error_and_its_label() {
        let e = io::Error::from(HandshakeError::plain("no_alpn", "no protocol".to_owned()));
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(reason_of(&e), "no_alpn");
        let inner = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<HandshakeError>())
            .expect("still a HandshakeError");
        assert_eq!(inner.message, "no protocol");

        let eof = io::Error::from(HandshakeError::plain("eof", String::new()));
        assert_eq!(eof.kind(), io::ErrorKind::UnexpectedEof);
        let reset = io::Error::new(io::ErrorKind::ConnectionReset, "peer reset");
        assert_eq!(reason_of(&reset), "reset");
    }

    #[test]
    fn libssl_reasons_get_the_rustls_labels() {
        assert_eq!(ssl_reason(199), Some("no_client_cert"));
        assert_eq!(ssl_reason(1000 + 48), Some("peer_rejected_cert"));
        assert_eq!(ssl_reason(1000 + 45), Some("alert_received"));
        assert_eq!(ssl_reason(1000 + 70), Some("tls_version"));
        assert_eq!(ssl_reason(235), Some("no_alpn"));
        assert_eq!(ssl_reason(267), Some("protocol"));
        assert_eq!(ssl_reason(12345), None);
    }
}
