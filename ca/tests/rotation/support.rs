//! What the rotation tests share: a self-signed CA with short lifetimes
//! whose rotation a [`ManualClock`] drives, SVIDs signed in process, and
//! the journal as the store holds it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_ca::authority::X509SvidSpec;
use meshid_ca::config::{CaConfig, HaConfig, RotationConfig};
use meshid_ca::server::CaServer;
use meshid_ca::store::{KeyKind, KeySlot, SlotState};
use meshid_identity::{BundleSet, PrivateKey, SpiffeId, verify_x509_svid};
use meshid_runtime::clock::ManualClock;
use rustls_pki_types::CertificateDer;

use super::server;

/// Life of every root the test CAs make.
pub const CA_TTL: Duration = Duration::from_secs(1200);
/// Longest SVID (X.509, agent, JWT) of the test CAs.
pub const SVID_TTL: Duration = Duration::from_secs(60);

/// A self-signed CA in `dir` with 20-minute roots and 1-minute SVIDs,
/// refreshing every 100 ms.
pub fn config(dir: &Path) -> CaConfig {
    CaConfig {
        ca_ttl: CA_TTL,
        default_x509_ttl: SVID_TTL,
        max_x509_ttl: SVID_TTL,
        agent_ttl: SVID_TTL,
        default_jwt_ttl: Duration::from_secs(30),
        max_jwt_ttl: SVID_TTL,
        rotation: RotationConfig::default(),
        ha: HaConfig {
            refresh_interval: Duration::from_millis(100),
            ..HaConfig::default()
        },
        ..server::config(dir)
    }
}

/// The CA of `cfg`, its rotation driven by `clock`.
pub async fn start(cfg: CaConfig, clock: &Arc<ManualClock>) -> CaServer {
    server::start_with_clock(cfg, clock.clone()).await
}

/// An X.509-SVID signed at `now` by the CA's current authority.
pub fn sign(ca: &CaServer, now: SystemTime) -> Vec<CertificateDer<'static>> {
    let id: SpiffeId = "spiffe://example.org/ns/payments/sa/api".parse().unwrap();
    let key = PrivateKey::generate_p256().unwrap().public_key_der();
    let spec = X509SvidSpec {
        spiffe_id: &id,
        dns_names: &[],
        public_key_der: &key,
        requested_ttl: Duration::ZERO,
        entry_ttl: Duration::ZERO,
    };
    ca.authority
        .load()
        .sign_x509_svid(&spec, now)
        .unwrap()
        .chain
}

/// Whether `svid` verifies at `now` against the bundle the CA serves.
pub fn verifies(ca: &CaServer, svid: &[CertificateDer<'static>], now: SystemTime) -> bool {
    let bundles: BundleSet = [ca.authority.bundle().as_ref().clone()]
        .into_iter()
        .collect();
    verify_x509_svid(svid, &bundles, now).is_ok()
}

/// The hex keyIdentifier of a leaf's AuthorityKeyIdentifier.
pub fn aki(leaf: &[u8]) -> String {
    use x509_parser::extensions::ParsedExtension;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).unwrap();
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| hex::encode(k.0))
            }
            _ => None,
        })
        .unwrap()
}

/// The stored slots of `kind` in `state`, by generation.
pub async fn slots(ca: &CaServer, kind: KeyKind, state: SlotState) -> Vec<KeySlot> {
    let mut out: Vec<KeySlot> = ca
        .store
        .list_key_slots()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.kind == kind && s.state == state)
        .collect();
    out.sort_by_key(|s| s.generation);
    out
}

/// The one slot of `kind` in `state`.
pub async fn slot(ca: &CaServer, kind: KeyKind, state: SlotState) -> KeySlot {
    let mut all = slots(ca, kind, state).await;
    assert_eq!(all.len(), 1, "one {kind} slot {state}: {all:?}");
    all.remove(0)
}

/// The stored bundle's sequence.
pub async fn sequence(ca: &CaServer) -> i64 {
    let td = ca.authority.load().trust_domain().clone();
    ca.store.get_bundle(&td).await.unwrap().unwrap().sequence
}
