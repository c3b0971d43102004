//! Certificates and loopback handshakes on either backend.
//!
//! A [`Server`] and a [`Client`] are built on rustls (the
//! `SpiffeVerifier`) or on OpenSSL (`identity::openssl`); [`run`] connects
//! them over 127.0.0.1 and reports what each side saw, or the reason label
//! it failed with.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_identity::openssl::{
    self as ossl, ClientAuth, ClientContext, ContextOptions, ServerContext, TlsMin,
};
use meshid_identity::tls::{PeerCheck, PeerMatch, PeerNotAllowed, SpiffeVerifier, peer_spiffe_id};
use meshid_identity::x509::{CaTemplate, SvidTemplate, self_signed_ca, sign_ca, sign_svid};
use meshid_identity::{BundleSet, PrivateKey, SpiffeId, TrustBundle, TrustDomain, crypto};
use meshid_runtime::clock::{ManualClock, SharedClock};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{AlertDescription, CertificateError, ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const HOUR: Duration = Duration::from_secs(3600);
const STEP: Duration = Duration::from_secs(10);
/// Every loopback server is the same peer to a client's session cache.
const SESSION_KEY: &str = "loopback";

/// The fixed instant every check runs at (2027-01-15), not the wall clock:
/// OpenSSL's own (ignored) verdict uses the wall clock and disagrees.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

pub fn clock() -> SharedClock {
    Arc::new(ManualClock::new(now()))
}

pub fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).expect("SPIFFE ID")
}

pub fn td(s: &str) -> TrustDomain {
    TrustDomain::new(s).expect("trust domain")
}

/// A CA certificate and its key.
pub struct Ca {
    pub cert: CertificateDer<'static>,
    key: KeyPair,
}

/// A certificate chain (leaf first) and the leaf's key.
#[derive(Clone)]
pub struct Svid {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKey,
}

fn ca_template(trust_domain: &str, cn: &str) -> CaTemplate {
    CaTemplate {
        trust_domain: td(trust_domain),
        common_name: cn.to_owned(),
        not_before: now() - 24 * HOUR,
        not_after: now() + 24 * HOUR,
        path_len: None,
    }
}

pub fn root(trust_domain: &str, cn: &str) -> Ca {
    let key = KeyPair::generate().expect("key");
    let cert = self_signed_ca(&ca_template(trust_domain, cn), &key).expect("root");
    Ca { cert, key }
}

pub fn intermediate(parent: &Ca, trust_domain: &str, cn: &str) -> Ca {
    let key = KeyPair::generate().expect("key");
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let cert = sign_ca(
        &ca_template(trust_domain, cn),
        &spki,
        &parent.cert,
        &parent.key,
    )
    .expect("intermediate");
    Ca { cert, key }
}

/// A profile-conforming SVID from `ca`, with `above` appended to its chain.
pub fn svid(ca: &Ca, spiffe_id: &str, above: &[&Ca]) -> Svid {
    let key = PrivateKey::generate_p256().expect("key");
    let t = SvidTemplate {
        spiffe_id: id(spiffe_id),
        dns_names: Vec::new(),
        not_before: now() - HOUR,
        not_after: now() + HOUR,
    };
    let leaf = sign_svid(&t, &key.public_key_der(), &ca.cert, &ca.key).expect("svid");
    let mut chain = vec![leaf];
    chain.extend(above.iter().map(|c| c.cert.clone()));
    Svid { chain, key }
}

/// A leaf built with rcgen directly, so a test can break one rule.
pub fn crafted(ca: &Ca, edit: impl FnOnce(&mut CertificateParams)) -> Svid {
    let key = PrivateKey::generate_p256().expect("key");
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::OrganizationName, "test");
    p.subject_alt_names = vec![san("spiffe://example.org/expected")];
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.not_before = (now() - HOUR).into();
    p.not_after = (now() + HOUR).into();
    p.use_authority_key_identifier_extension = true;
    edit(&mut p);
    let issuer = Issuer::from_ca_cert_der(&ca.cert, &ca.key).expect("issuer");
    let kp = key.key_pair().expect("key pair");
    let leaf = p.signed_by(&kp, &issuer).expect("sign").der().clone();
    Svid {
        chain: vec![leaf],
        key,
    }
}

pub fn san(uri: &str) -> SanType {
    SanType::URI(uri.to_owned().try_into().expect("URI"))
}

/// A CA-leaf's basic constraints.
pub fn ca_leaf(p: &mut CertificateParams) {
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages.push(KeyUsagePurpose::KeyCertSign);
}

pub fn bundles(cas: &[(&str, &Ca)]) -> Arc<BundleSet> {
    let mut set = BundleSet::new();
    for (name, ca) in cas {
        let mut b = set
            .get(&td(name))
            .cloned()
            .unwrap_or_else(|| TrustBundle::new(td(name)));
        b.x509_authorities.push(ca.cert.clone());
        set.insert(b);
    }
    Arc::new(set)
}

pub fn check(bundles: &Arc<BundleSet>, peer: PeerMatch) -> Arc<PeerCheck> {
    Arc::new(
        PeerCheck::new(bundles.clone(), peer)
            .expect("check")
            .clock(clock()),
    )
}

/// Which implementation a side runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Rustls,
    Openssl,
}

pub const BOTH: [Backend; 2] = [Backend::Rustls, Backend::Openssl];

/// A server on either backend.
pub enum Server {
    Rustls(tokio_rustls::TlsAcceptor),
    Openssl(ServerContext, Arc<PeerCheck>),
}

/// A client on either backend.
pub enum Client {
    Rustls(tokio_rustls::TlsConnector),
    Openssl(ClientContext, Arc<PeerCheck>),
}

fn verifier(bundles: &Arc<BundleSet>, peer: PeerMatch, optional: bool) -> Arc<SpiffeVerifier> {
    let b = SpiffeVerifier::builder(bundles.clone())
        .peer(peer)
        .clock(clock());
    let b = if optional {
        b.allow_unauthenticated()
    } else {
        b
    };
    b.build().expect("verifier")
}

/// A rustls client that speaks TLS 1.2 only (what a TLS 1.3-only server
/// must refuse), presenting `svid`.
pub fn rustls_tls12_client(svid: &Svid, bundles: &Arc<BundleSet>) -> Client {
    let cfg = ClientConfig::builder_with_provider(crypto::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier(bundles, PeerMatch::Any, false))
        .with_client_auth_cert(svid.chain.clone(), crypto::private_key_der(&svid.key))
        .expect("client config");
    Client::Rustls(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn versions(opts: &ContextOptions) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match opts.min_version {
        TlsMin::Tls12 => rustls::ALL_VERSIONS,
        TlsMin::Tls13 => TLS13_ONLY,
    }
}

pub fn server(
    backend: Backend,
    svid: &Svid,
    bundles: &Arc<BundleSet>,
    peer: PeerMatch,
    opts: &ContextOptions,
    auth: ClientAuth,
) -> Server {
    match backend {
        Backend::Rustls => {
            let optional = auth == ClientAuth::Optional;
            let mut cfg = ServerConfig::builder_with_provider(crypto::provider())
                .with_protocol_versions(versions(opts))
                .expect("versions")
                .with_client_cert_verifier(verifier(bundles, peer, optional))
                .with_single_cert(svid.chain.clone(), crypto::private_key_der(&svid.key))
                .expect("server config");
            cfg.alpn_protocols = opts.alpn.clone();
            Server::Rustls(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
        }
        Backend::Openssl => Server::Openssl(
            ServerContext::new(opts, &svid.chain, &svid.key, auth).expect("server context"),
            check(bundles, peer),
        ),
    }
}

pub fn client(
    backend: Backend,
    svid: Option<&Svid>,
    bundles: &Arc<BundleSet>,
    peer: PeerMatch,
    opts: &ContextOptions,
) -> Client {
    match backend {
        Backend::Rustls => {
            let b = ClientConfig::builder_with_provider(crypto::provider())
                .with_protocol_versions(versions(opts))
                .expect("versions")
                .dangerous()
                .with_custom_certificate_verifier(verifier(bundles, peer, false));
            let mut cfg = match svid {
                Some(s) => b
                    .with_client_auth_cert(s.chain.clone(), crypto::private_key_der(&s.key))
                    .expect("client config"),
                None => b.with_no_client_auth(),
            };
            cfg.alpn_protocols = opts.alpn.clone();
            if !opts.resumption {
                cfg.resumption = Resumption::disabled();
            }
            Client::Rustls(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
        }
        Backend::Openssl => Client::Openssl(
            ClientContext::new(opts, svid.map(|s| (s.chain.as_slice(), &s.key)))
                .expect("client context"),
            check(bundles, peer),
        ),
    }
}

/// What one side saw of an established connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The verified peer's ID (none: no certificate presented).
    pub peer: Option<SpiffeId>,
    /// How many certificates the peer presented.
    pub peer_certs: usize,
    pub alpn: Option<Vec<u8>>,
    pub resumed: bool,
    pub version: String,
    pub cipher: String,
}

/// One side's outcome: what it saw, or the reason label it failed with.
pub type Outcome = Result<Seen, &'static str>;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Connects `client` to `server` on loopback: a handshake, then the server
/// sends two bytes the client must read (a TLS 1.3 client learns only then
/// that the server refused its certificate). Returns (server, client).
pub async fn run(server: &Server, client: &Client) -> (Outcome, Outcome) {
    run_closing(server, client, true).await
}

/// As [`run`], but the client drops its connection without a TLS
/// close_notify (as a pooled upstream connection is dropped).
pub async fn run_abrupt(server: &Server, client: &Client) -> (Outcome, Outcome) {
    run_closing(server, client, false).await
}

async fn run_closing(server: &Server, client: &Client, clean: bool) -> (Outcome, Outcome) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server_side = serve(server, &listener);
    let client_side = async {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let (mut io, seen) = client_handshake(client, tcp, SESSION_KEY).await?;
        let mut buf = [0u8; 2];
        match tokio::time::timeout(STEP, io.read_exact(&mut buf)).await {
            Ok(Ok(_)) if &buf == b"ok" => {}
            Ok(Ok(_)) => return Err("wrong_data"),
            Ok(Err(e)) => return Err(io_reason(&e)),
            Err(_) => return Err("timeout"),
        }
        if clean {
            let _ = io.shutdown().await;
        }
        drop(io);
        Ok(seen)
    };
    let both = async { tokio::join!(server_side, client_side) };
    tokio::time::timeout(3 * STEP, both)
        .await
        .expect("handshake finished in time")
}

/// Serves one connection from `listener`: the handshake, then `ok`, then
/// waits for the client to hang up.
pub async fn serve(server: &Server, listener: &TcpListener) -> Outcome {
    let (tcp, _) = listener.accept().await.expect("accept");
    let (mut io, seen) = server_handshake(server, tcp).await?;
    let _ = io.write_all(b"ok").await;
    let _ = io.flush().await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(STEP, io.read_to_end(&mut rest)).await;
    // A clean close: OpenSSL drops the session of a connection freed
    // without one.
    let _ = io.shutdown().await;
    Ok(seen)
}

async fn server_handshake(
    server: &Server,
    tcp: TcpStream,
) -> Result<(Box<dyn Stream>, Seen), &'static str> {
    match server {
        Server::Rustls(acceptor) => {
            let tls = acceptor.accept(tcp).await.map_err(|e| io_reason(&e))?;
            let (_, conn) = tls.get_ref();
            let seen = Seen {
                peer: conn.peer_certificates().and_then(peer_spiffe_id),
                peer_certs: conn.peer_certificates().map_or(0, <[_]>::len),
                alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
                version: format!("{:?}", conn.protocol_version()),
                cipher: format!("{:?}", conn.negotiated_cipher_suite().map(|s| s.suite())),
            };
            Ok((Box::new(tls), seen))
        }
        Server::Openssl(ctx, check) => {
            let (ssl, slot) = ctx.ssl(check.clone()).expect("ssl");
            let tls = ossl::accept(ssl, &slot, tcp).await.map_err(|e| e.reason)?;
            let seen = openssl_seen(tls.ssl(), &slot);
            Ok((Box::new(tls), seen))
        }
    }
}

async fn client_handshake(
    client: &Client,
    tcp: TcpStream,
    session_key: &str,
) -> Result<(Box<dyn Stream>, Seen), &'static str> {
    match client {
        Client::Rustls(connector) => {
            let name = ServerName::try_from("peer.invalid").expect("name");
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| io_reason(&e))?;
            let (_, conn) = tls.get_ref();
            let seen = Seen {
                peer: conn.peer_certificates().and_then(peer_spiffe_id),
                peer_certs: conn.peer_certificates().map_or(0, <[_]>::len),
                alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
                version: format!("{:?}", conn.protocol_version()),
                cipher: format!("{:?}", conn.negotiated_cipher_suite().map(|s| s.suite())),
            };
            Ok((Box::new(tls), seen))
        }
        Client::Openssl(ctx, check) => {
            let (ssl, slot) = ctx.ssl(check.clone(), session_key).expect("ssl");
            let tls = ossl::connect(ssl, &slot, tcp).await.map_err(|e| e.reason)?;
            let seen = openssl_seen(tls.ssl(), &slot);
            Ok((Box::new(tls), seen))
        }
    }
}

fn openssl_seen(ssl: &ossl::SslRef, slot: &ossl::PeerSlot) -> Seen {
    let chain = ossl::peer_chain(ssl);
    let peer = slot.verified().map(|v| v.spiffe_id.clone());
    // The verdict is about the chain the connection exposes.
    assert_eq!(peer, peer_spiffe_id(&chain), "verdict and peer chain agree");
    Seen {
        peer,
        peer_certs: chain.len(),
        alpn: ssl.selected_alpn_protocol().map(<[u8]>::to_vec),
        resumed: ssl.session_reused(),
        version: ssl.version_str().to_owned(),
        cipher: ssl
            .current_cipher()
            .map(|c| c.name().to_owned())
            .unwrap_or_default(),
    }
}

/// The label of an I/O error from either backend: OpenSSL's from
/// `identity::openssl::reason_of`, rustls's as the proxy's
/// `handshake_error_reason` (proxy/src/tls/error.rs) gives it.
fn io_reason(e: &io::Error) -> &'static str {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return ossl::reason_of(e);
    };
    match tls {
        rustls::Error::NoCertificatesPresented => "no_client_cert",
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired => "cert_expired",
            CertificateError::NotValidYet => "cert_not_yet_valid",
            CertificateError::UnknownIssuer => "unknown_issuer",
            CertificateError::BadSignature => "bad_signature",
            CertificateError::BadEncoding => "bad_encoding",
            _ if PeerNotAllowed::in_error(tls).is_some() => "peer_id_mismatch",
            _ => "invalid_cert",
        },
        rustls::Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateRequired,
        ) => "peer_rejected_cert",
        rustls::Error::AlertReceived(AlertDescription::ProtocolVersion) => "tls_version",
        rustls::Error::AlertReceived(_) => "alert_received",
        rustls::Error::NoApplicationProtocol => "no_alpn",
        rustls::Error::PeerIncompatible(p) => match p {
            rustls::PeerIncompatible::Tls12NotOffered
            | rustls::PeerIncompatible::Tls12NotOfferedOrEnabled
            | rustls::PeerIncompatible::SupportedVersionsExtensionRequired
            | rustls::PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
            | rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13 => "tls_version",
            _ => "incompatible",
        },
        _ => "other",
    }
}
