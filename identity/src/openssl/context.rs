//! [`ServerContext`] and [`ClientContext`]: OpenSSL contexts built from an
//! SVID and [`ContextOptions`], and the per-connection [`Ssl`] each makes.

use std::fmt;
use std::sync::Arc;

use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    AlpnError, Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslSessionCacheMode,
    SslVerifyMode, SslVersion,
};
use openssl::x509::X509;
use rustls_pki_types::CertificateDer;

use super::session::SharedSessions;
use super::verify::{PeerSlot, install};
use super::{OpensslError, policy};
use crate::PrivateKey;
use crate::tls::{Algorithms, PeerCheck};

/// The session ID context servers bind sessions to (OpenSSL refuses to
/// resume a session with a verified client certificate without one).
const SESSION_ID_CONTEXT: &[u8] = b"meshid";
/// How many sessions a server keeps for resumption (rustls's default).
const SERVER_SESSIONS: i32 = 256;

/// The oldest TLS version a context accepts (TLS 1.3 is always the newest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsMin {
    /// TLS 1.2 and 1.3.
    Tls12,
    /// TLS 1.3 only.
    #[default]
    Tls13,
}

/// Whether a server asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Every client must present an SVID that passes the check.
    Required,
    /// A client may connect without a certificate; one it presents is
    /// still checked in full and refused if it fails.
    Optional,
}

/// What both kinds of context are built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextOptions {
    /// The oldest TLS version accepted.
    pub min_version: TlsMin,
    /// ALPN protocols, most preferred first (empty: no ALPN). A server
    /// picks in its own order and refuses a client with no protocol in
    /// common (`no_application_protocol`); a client offers them.
    pub alpn: Vec<Vec<u8>>,
    /// Which algorithm lists to offer ([`policy::policy`]).
    pub algorithms: Algorithms,
    /// Session resumption: a server keeps sessions, a client caches and
    /// offers them per session key.
    pub resumption: bool,
}

impl Default for ContextOptions {
    /// TLS 1.3, no ALPN, default algorithms, resumption on.
    fn default() -> Self {
        Self {
            min_version: TlsMin::Tls13,
            alpn: Vec::new(),
            algorithms: Algorithms::Default,
            resumption: true,
        }
    }
}

/// A server context presenting one SVID.
///
/// With resumption on, sessions are kept in the context (stateful, as
/// rustls's default server), not in tickets: a resumed session keeps the
/// client's whole chain for the re-check. OpenSSL forgets the session of a
/// connection freed without a TLS shutdown, so close connections with
/// `shutdown()` to let clients resume.
#[derive(Clone)]
pub struct ServerContext {
    ctx: SslContext,
    client_auth: ClientAuth,
}

/// A client context, presenting an SVID or none, with its session cache.
#[derive(Clone)]
pub struct ClientContext {
    ctx: SslContext,
    sessions: Option<SharedSessions>,
}

// === impl ServerContext ===

impl ServerContext {
    /// A server context presenting `chain` (leaf first) with `key`.
    pub fn new(
        opts: &ContextOptions,
        chain: &[CertificateDer<'_>],
        key: &PrivateKey,
        client_auth: ClientAuth,
    ) -> Result<Self, OpensslError> {
        let mut b = builder(SslMethod::tls_server(), opts)?;
        present(&mut b, chain, key)?;
        b.set_session_id_context(SESSION_ID_CONTEXT)
            .map_err(OpensslError::new("set the session ID context"))?;
        if opts.resumption {
            // Stateful sessions (as rustls's default server): the session
            // keeps the client's whole chain for the resumption re-check.
            b.set_options(SslOptions::NO_TICKET);
            b.set_session_cache_mode(SslSessionCacheMode::SERVER);
            b.set_session_cache_size(SERVER_SESSIONS);
        } else {
            b.set_options(SslOptions::NO_TICKET);
            b.set_session_cache_mode(SslSessionCacheMode::OFF);
            b.set_num_tickets(0)
                .map_err(OpensslError::new("turn session tickets off"))?;
        }
        if !opts.alpn.is_empty() {
            let ours = opts.alpn.clone();
            b.set_alpn_select_callback(move |_, offered| {
                select_alpn(&ours, offered).ok_or(AlpnError::ALERT_FATAL)
            });
        }
        Ok(Self {
            ctx: b.build(),
            client_auth,
        })
    }

    /// One connection's [`Ssl`] checking the client with `check`, and the
    /// slot its verdict lands in; hand both to [`accept`](super::accept).
    pub fn ssl(&self, check: Arc<PeerCheck>) -> Result<(Ssl, PeerSlot), OpensslError> {
        let mut ssl = Ssl::new(&self.ctx).map_err(OpensslError::new("start a connection"))?;
        let (mode, required) = match self.client_auth {
            ClientAuth::Required => (
                SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
                true,
            ),
            ClientAuth::Optional => (SslVerifyMode::PEER, false),
        };
        let slot = PeerSlot::new(check, required);
        install(&mut ssl, mode, slot.clone());
        Ok((ssl, slot))
    }

    /// Whether clients must present a certificate.
    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth
    }
}

impl fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerContext")
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

// === impl ClientContext ===

impl ClientContext {
    /// A client context presenting `client` (chain leaf first, and key)
    /// when given.
    pub fn new(
        opts: &ContextOptions,
        client: Option<(&[CertificateDer<'_>], &PrivateKey)>,
    ) -> Result<Self, OpensslError> {
        let mut b = builder(SslMethod::tls_client(), opts)?;
        if let Some((chain, key)) = client {
            present(&mut b, chain, key)?;
        }
        if !opts.alpn.is_empty() {
            b.set_alpn_protos(&alpn_wire(&opts.alpn)?)
                .map_err(OpensslError::new("set the ALPN protocols"))?;
        }
        let sessions = if opts.resumption {
            let cache = SharedSessions::default();
            let store = cache.clone();
            b.set_session_cache_mode(
                SslSessionCacheMode::CLIENT | SslSessionCacheMode::NO_INTERNAL_STORE,
            );
            b.set_new_session_callback(move |ssl, session| store.store(ssl, session));
            Some(cache)
        } else {
            b.set_session_cache_mode(SslSessionCacheMode::OFF);
            None
        };
        Ok(Self {
            ctx: b.build(),
            sessions,
        })
    }

    /// One connection's [`Ssl`] checking the server with `check`, and the
    /// slot its verdict lands in; hand both to [`connect`](super::connect).
    /// With resumption on, it offers a session cached under `session_key`
    /// (e.g. the peer's address) and files the new ones there.
    pub fn ssl(
        &self,
        check: Arc<PeerCheck>,
        session_key: &str,
    ) -> Result<(Ssl, PeerSlot), OpensslError> {
        let mut ssl = Ssl::new(&self.ctx).map_err(OpensslError::new("start a connection"))?;
        let slot = PeerSlot::new(check, true);
        install(&mut ssl, SslVerifyMode::PEER, slot.clone());
        if let Some(cache) = &self.sessions {
            cache.resume(&mut ssl, session_key, slot.check())?;
        }
        Ok((ssl, slot))
    }
}

impl fmt::Debug for ClientContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientContext")
            .field("resumption", &self.sessions.is_some())
            .finish_non_exhaustive()
    }
}

// === helpers ===

/// A context with the versions and algorithm lists of `opts`.
fn builder(method: SslMethod, opts: &ContextOptions) -> Result<SslContextBuilder, OpensslError> {
    let mut b = SslContext::builder(method).map_err(OpensslError::new("create a TLS context"))?;
    let min = match opts.min_version {
        TlsMin::Tls12 => SslVersion::TLS1_2,
        TlsMin::Tls13 => SslVersion::TLS1_3,
    };
    b.set_min_proto_version(Some(min))
        .map_err(OpensslError::new("set the oldest TLS version"))?;
    b.set_max_proto_version(Some(SslVersion::TLS1_3))
        .map_err(OpensslError::new("set the newest TLS version"))?;
    let p = policy::policy(opts.algorithms);
    b.set_ciphersuites(p.tls13_ciphersuites)
        .map_err(OpensslError::new("set the TLS 1.3 cipher suites"))?;
    b.set_cipher_list(p.tls12_ciphers)
        .map_err(OpensslError::new("set the TLS 1.2 cipher suites"))?;
    b.set_groups_list(p.groups)
        .map_err(OpensslError::new("set the key exchange groups"))?;
    b.set_sigalgs_list(p.sigalgs)
        .map_err(OpensslError::new("set the signature algorithms"))?;
    b.set_options(SslOptions::NO_COMPRESSION | SslOptions::NO_RENEGOTIATION);
    Ok(b)
}

/// Presents `chain` (leaf first) with `key`.
fn present(
    b: &mut SslContextBuilder,
    chain: &[CertificateDer<'_>],
    key: &PrivateKey,
) -> Result<(), OpensslError> {
    let (leaf, rest) = chain
        .split_first()
        .ok_or_else(|| OpensslError::invalid("present an SVID: the chain is empty"))?;
    let cert = |c: &CertificateDer<'_>| {
        X509::from_der(c.as_ref()).map_err(OpensslError::new("parse a certificate"))
    };
    b.set_certificate(cert(leaf)?.as_ref())
        .map_err(OpensslError::new("set the certificate"))?;
    for c in rest {
        b.add_extra_chain_cert(cert(c)?)
            .map_err(OpensslError::new("add an intermediate certificate"))?;
    }
    let pkey: PKey<Private> = PKey::private_key_from_pkcs8(key.pkcs8_der())
        .map_err(OpensslError::new("load the private key"))?;
    b.set_private_key(&pkey)
        .map_err(OpensslError::new("set the private key"))?;
    b.check_private_key().map_err(OpensslError::new(
        "match the private key to the certificate",
    ))
}

/// ALPN protocols in wire format (each prefixed by its length).
fn alpn_wire(protocols: &[Vec<u8>]) -> Result<Vec<u8>, OpensslError> {
    let mut wire = Vec::new();
    for p in protocols {
        let len = u8::try_from(p.len())
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| OpensslError::invalid("encode an ALPN protocol of 1 to 255 bytes"))?;
        wire.push(len);
        wire.extend_from_slice(p);
    }
    Ok(wire)
}

/// The first of `ours` that the client `offered` (wire format), as a slice
/// of `offered`.
fn select_alpn<'a>(ours: &[Vec<u8>], offered: &'a [u8]) -> Option<&'a [u8]> {
    let mut theirs = Vec::new();
    let mut rest = offered;
    while let Some((&len, tail)) = rest.split_first() {
        let (p, next) = tail.split_at_checked(usize::from(len))?;
        theirs.push(p);
        rest = next;
    }
    ours.iter()
        .find_map(|want| theirs.iter().find(|p| **p == want.as_slice()).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_picks_in_server_order_from_the_wire_list() {
        let ours = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let offered = alpn_wire(&[b"http/1.1".to_vec(), b"h2".to_vec()]).expect("wire");
        assert_eq!(select_alpn(&ours, &offered), Some(&b"h2"[..]));
        let only_h1 = alpn_wire(&[b"http/1.1".to_vec()]).expect("wire");
        assert_eq!(select_alpn(&ours, &only_h1), Some(&b"http/1.1"[..]));
        let none = alpn_wire(&[b"spdy/3".to_vec()]).expect("wire");
        assert_eq!(select_alpn(&ours, &none), None);
        // A truncated list selects nothing.
        assert_eq!(select_alpn(&ours, &[5, b'h', b'2']), None);
        assert!(alpn_wire(&[Vec::new()]).is_err());
    }
}
