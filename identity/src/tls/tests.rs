//! In-memory rustls handshakes between two SVID holders.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, ServerConfig, ServerConnection, SupportedProtocolVersion,
};

use super::{PeerMatch, SpiffeClientVerifier, SpiffeServerVerifier, peer_spiffe_id};
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
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(svid.key.pkcs8_der().to_vec()))
}

fn clock() -> SharedClock {
    Arc::new(meshid_runtime::clock::ManualClock::new(now()))
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_cfg = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])?
        .with_client_cert_verifier(Arc::new(SpiffeClientVerifier::with_clock(
            bundles.clone(),
            server_accepts,
            clock(),
        )))
        .with_single_cert(server.chain.clone(), key_der(server))?;
    let client_cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier::with_clock(
            bundles,
            client_accepts,
            clock(),
        )))
        .with_client_auth_cert(client.chain.clone(), key_der(client))?;

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
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(_))
        ),
        "{err:?}"
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
