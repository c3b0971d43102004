//! In-memory rustls handshakes between two SVID holders.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, ServerConfig, ServerConnection, SupportedProtocolVersion,
};

use super::{PeerMatch, PeerNotAllowed, SpiffeVerifier, VerifierError, peer_spiffe_id};
use crate::key::PrivateKey;
use crate::x509::{CaTemplate, SvidTemplate, self_signed_ca, sign_svid};
use crate::{BundleSet, SpiffeId, TrustBundle, TrustDomain};
use meshid_runtime::clock::SharedClock;

const HOUR: Duration = Duration::from_secs(3600);

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

struct Authority {
    cert: CertificateDer<'static>,
    key: rcgen::KeyPair,
}

struct Svid {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKey,
}

fn authority(td: &str) -> Authority {
    let key = rcgen::KeyPair::generate().unwrap();
    let t = CaTemplate {
        trust_domain: TrustDomain::new(td).unwrap(),
        common_name: format!("{td} root"),
        not_before: now() - HOUR,
        not_after: now() + 24 * HOUR,
        path_len: None,
    };
    let cert = self_signed_ca(&t, &key).unwrap();
    Authority { cert, key }
}

fn svid(ca: &Authority, id: &str) -> Svid {
    let key = PrivateKey::generate_p256().unwrap();
    let t = SvidTemplate {
        spiffe_id: SpiffeId::parse(id).unwrap(),
        dns_names: Vec::new(),
        not_before: now() - HOUR,
        not_after: now() + HOUR,
    };
    let leaf = sign_svid(&t, &key.public_key_der(), &ca.cert, &ca.key).unwrap();
    Svid {
        chain: vec![leaf],
        key,
    }
}

fn bundles(cas: &[(&str, &Authority)]) -> Arc<BundleSet> {
    let mut set = BundleSet::new();
    for (td, ca) in cas {
        let mut b = TrustBundle::new(TrustDomain::new(td).unwrap());
        b.x509_authorities.push(ca.cert.clone());
        set.insert(b);
    }
    Arc::new(set)
}

fn key_der(svid: &Svid) -> PrivateKeyDer<'static> {
    crate::crypto::private_key_der(&svid.key)
}

fn clock() -> SharedClock {
    Arc::new(meshid_runtime::clock::ManualClock::new(now()))
}

fn verifier(bundles: &Arc<BundleSet>, accepts: PeerMatch) -> Arc<SpiffeVerifier> {
    SpiffeVerifier::builder(bundles.clone())
        .peer(accepts)
        .clock(clock())
        .provider(crate::crypto::provider())
        .build()
        .unwrap()
}

/// Runs a full handshake over in-memory buffers.
fn handshake(
    version: &'static SupportedProtocolVersion,
    client: &Svid,
    client_accepts: PeerMatch,
    server: &Svid,
    server_accepts: PeerMatch,
    bundles: Arc<BundleSet>,
) -> Result<(ClientConnection, ServerConnection), rustls::Error> {
    let client_verifier = verifier(&bundles, server_accepts);
    handshake_with(
        version,
        Some(client),
        client_accepts,
        server,
        client_verifier,
        bundles,
    )
}

/// Like [`handshake`] with the server's client verifier given and the
/// client certificate optional.
fn handshake_with(
    version: &'static SupportedProtocolVersion,
    client: Option<&Svid>,
    client_accepts: PeerMatch,
    server: &Svid,
    client_verifier: Arc<SpiffeVerifier>,
    bundles: Arc<BundleSet>,
) -> Result<(ClientConnection, ServerConnection), rustls::Error> {
    let provider = crate::crypto::provider();
    let server_cfg = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(server.chain.clone(), key_der(server))?;
    let client_cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])?
        .dangerous()
        .with_custom_certificate_verifier(verifier(&bundles, client_accepts));
    let client_cfg = match client {
        Some(client) => client_cfg.with_client_auth_cert(client.chain.clone(), key_der(client))?,
        None => client_cfg.with_no_client_auth(),
    };

    let name = ServerName::try_from("ignored.invalid").unwrap();
    let mut c = ClientConnection::new(Arc::new(client_cfg), name)?;
    let mut s = ServerConnection::new(Arc::new(server_cfg))?;
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok((c, s));
        }
    }
    panic!("handshake did not finish");
}

#[test]
fn mutual_tls_between_two_svids_yields_both_ids() {
    let ca = authority("example.org");
    let client = svid(&ca, "spiffe://example.org/client");
    let server = svid(&ca, "spiffe://example.org/server");
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let server_id = SpiffeId::parse("spiffe://example.org/server").unwrap();
        let (c, s) = handshake(
            version,
            &client,
            PeerMatch::OneOf(vec![server_id]),
            &server,
            PeerMatch::TrustDomain(TrustDomain::new("example.org").unwrap()),
            bundles(&[("example.org", &ca)]),
        )
        .unwrap();
        let seen_by_server = peer_spiffe_id(s.peer_certificates().unwrap()).unwrap();
        let seen_by_client = peer_spiffe_id(c.peer_certificates().unwrap()).unwrap();
        assert_eq!(seen_by_server.as_str(), "spiffe://example.org/client");
        assert_eq!(seen_by_client.as_str(), "spiffe://example.org/server");
    }
}

#[test]
fn client_cert_from_a_foreign_ca_is_refused() {
    let ca = authority("example.org");
    let foreign = authority("example.org");
    let client = svid(&foreign, "spiffe://example.org/client");
    let server = svid(&ca, "spiffe://example.org/server");
    let err = handshake(
        &rustls::version::TLS13,
        &client,
        PeerMatch::Any,
        &server,
        PeerMatch::Any,
        bundles(&[("example.org", &ca)]),
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

#[test]
fn server_outside_the_allowed_ids_is_refused() {
    let ca = authority("example.org");
    let client = svid(&ca, "spiffe://example.org/client");
    let server = svid(&ca, "spiffe://example.org/impostor");
    let err = handshake(
        &rustls::version::TLS13,
        &client,
        PeerMatch::OneOf(vec![
            SpiffeId::parse("spiffe://example.org/server").unwrap(),
        ]),
        &server,
        PeerMatch::Any,
        bundles(&[("example.org", &ca)]),
    )
    .err()
    .unwrap();
    let refused = PeerNotAllowed::in_error(&err).unwrap();
    assert_eq!(refused.presented.as_str(), "spiffe://example.org/impostor");
    assert_eq!(
        refused.expected_ids()[0].as_str(),
        "spiffe://example.org/server"
    );
    assert_eq!(
        refused.to_string(),
        "the peer presented spiffe://example.org/impostor, but this connection accepts only spiffe://example.org/server"
    );
    // rustls prints the cause with Debug; both IDs still appear in its text.
    let message = err.to_string();
    assert!(
        message.contains("spiffe://example.org/impostor")
            && message.contains("spiffe://example.org/server"),
        "{message}"
    );
}

#[test]
fn peer_in_another_federated_trust_domain_obeys_peer_match() {
    let ours = authority("example.org");
    let theirs = authority("partner.org");
    let client = svid(&theirs, "spiffe://partner.org/client");
    let server = svid(&ours, "spiffe://example.org/server");
    let set = bundles(&[("example.org", &ours), ("partner.org", &theirs)]);
    let accepted = handshake(
        &rustls::version::TLS13,
        &client,
        PeerMatch::Any,
        &server,
        PeerMatch::Any,
        set.clone(),
    );
    assert!(accepted.is_ok());
    let refused = handshake(
        &rustls::version::TLS13,
        &client,
        PeerMatch::Any,
        &server,
        PeerMatch::TrustDomain(TrustDomain::new("example.org").unwrap()),
        set,
    );
    assert!(refused.is_err());
}

#[test]
fn builder_refuses_bundles_that_can_verify_nobody() {
    let empty = Arc::new(BundleSet::new());
    assert_eq!(
        SpiffeVerifier::builder(empty).build().err(),
        Some(VerifierError::NoBundles)
    );
    // A bundle with JWT keys only has no X.509 root either.
    let mut jwt_only = BundleSet::new();
    jwt_only.insert(TrustBundle::new(TrustDomain::new("example.org").unwrap()));
    let err = SpiffeVerifier::builder(Arc::new(jwt_only)).build().err();
    assert_eq!(err, Some(VerifierError::NoBundles));
    assert!(
        err.unwrap()
            .to_string()
            .contains("load the trust domain's bundle")
    );

    let ca = authority("example.org");
    let set = bundles(&[("example.org", &ca)]);
    assert_eq!(
        SpiffeVerifier::builder(set.clone())
            .peer(PeerMatch::OneOf(vec![]))
            .build()
            .err(),
        Some(VerifierError::NoPeers)
    );
    assert!(SpiffeVerifier::builder(set).build().is_ok());
}

#[test]
fn client_certificates_are_mandatory_unless_allowed_otherwise() {
    let ca = authority("example.org");
    let server = svid(&ca, "spiffe://example.org/server");
    let set = bundles(&[("example.org", &ca)]);
    let err = handshake_with(
        &rustls::version::TLS13,
        None,
        PeerMatch::Any,
        &server,
        verifier(&set, PeerMatch::Any),
        set,
    )
    .err()
    .unwrap();
    assert_eq!(err, rustls::Error::NoCertificatesPresented);
}

#[test]
fn allow_unauthenticated_accepts_no_certificate_and_still_verifies_one() {
    let ca = authority("example.org");
    let foreign = authority("example.org");
    let server = svid(&ca, "spiffe://example.org/server");
    let set = bundles(&[("example.org", &ca)]);
    let optional = || {
        SpiffeVerifier::builder(set.clone())
            .peer(PeerMatch::TrustDomain(
                TrustDomain::new("example.org").unwrap(),
            ))
            .clock(clock())
            .allow_unauthenticated()
            .build()
            .unwrap()
    };
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // No certificate: accepted, and the server sees no peer ID.
        let (c, s) = handshake_with(
            version,
            None,
            PeerMatch::Any,
            &server,
            optional(),
            set.clone(),
        )
        .unwrap();
        assert!(s.peer_certificates().is_none());
        assert_eq!(
            peer_spiffe_id(c.peer_certificates().unwrap())
                .unwrap()
                .as_str(),
            "spiffe://example.org/server"
        );

        // A valid certificate: verified, and its ID is the peer's.
        let good = svid(&ca, "spiffe://example.org/agent");
        let (_, s) = handshake_with(
            version,
            Some(&good),
            PeerMatch::Any,
            &server,
            optional(),
            set.clone(),
        )
        .unwrap();
        let seen = peer_spiffe_id(s.peer_certificates().unwrap()).unwrap();
        assert_eq!(seen.as_str(), "spiffe://example.org/agent");

        // A certificate from another CA: refused, not ignored.
        let forged = svid(&foreign, "spiffe://example.org/agent");
        let err = handshake_with(
            version,
            Some(&forged),
            PeerMatch::Any,
            &server,
            optional(),
            set.clone(),
        )
        .err()
        .unwrap();
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(_)),
            "{err:?}"
        );

        // A valid certificate outside the PeerMatch: refused too.
        let other = authority("partner.org");
        let both = bundles(&[("example.org", &ca), ("partner.org", &other)]);
        let outsider = svid(&other, "spiffe://partner.org/agent");
        let strict = SpiffeVerifier::builder(both.clone())
            .peer(PeerMatch::TrustDomain(
                TrustDomain::new("example.org").unwrap(),
            ))
            .clock(clock())
            .allow_unauthenticated()
            .build()
            .unwrap();
        let err = handshake_with(
            version,
            Some(&outsider),
            PeerMatch::Any,
            &server,
            strict,
            both,
        )
        .err()
        .unwrap();
        assert!(PeerNotAllowed::in_error(&err).is_some(), "{err:?}");
    }
}
