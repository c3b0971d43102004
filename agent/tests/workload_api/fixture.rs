//! A tiny in-test PKI and snapshots for the Workload API and SDS tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_agent::cache::{CachedSvid, EntryInfo, Snapshot};
use meshid_identity::x509::{self_signed_ca, sign_svid};
use meshid_identity::{
    BundleSet, CaTemplate, JwtSigningKey, PrivateKey, Selector, SpiffeId, SvidTemplate,
    TrustBundle, TrustDomain,
};
use rustls_pki_types::CertificateDer;

/// A trust domain's root key and certificate, and its JWT signing key.
pub struct Pki {
    pub td: TrustDomain,
    key: PrivateKey,
    pub root: CertificateDer<'static>,
    pub jwt_key: JwtSigningKey,
}

impl Pki {
    pub fn new(td: &str) -> Self {
        let td = TrustDomain::new(td).unwrap();
        let key = PrivateKey::generate_p256().unwrap();
        let now = SystemTime::now();
        let root = self_signed_ca(
            &CaTemplate {
                trust_domain: td.clone(),
                common_name: format!("{} test root", td.as_str()),
                not_before: now - Duration::from_secs(3600),
                not_after: now + Duration::from_secs(24 * 3600),
                path_len: None,
            },
            &key.key_pair().unwrap(),
        )
        .unwrap();
        Self {
            td,
            key,
            root,
            jwt_key: JwtSigningKey::generate("test-kid").unwrap(),
        }
    }

    /// The bundle: the root and the JWT key.
    pub fn bundle(&self) -> TrustBundle {
        let mut b = TrustBundle::new(self.td.clone());
        b.x509_authorities.push(self.root.clone());
        b.jwt_authorities.push(self.jwt_key.public_authority());
        b
    }

    /// An SVID for `entry`, valid from `not_before` to `not_after`.
    pub fn svid(
        &self,
        entry: EntryInfo,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> CachedSvid {
        let key = PrivateKey::generate_p256().unwrap();
        let leaf = sign_svid(
            &SvidTemplate {
                spiffe_id: entry.spiffe_id.clone(),
                dns_names: entry.dns_names.clone(),
                not_before,
                not_after,
            },
            &key.public_key_der(),
            &self.root,
            &self.key.key_pair().unwrap(),
        )
        .unwrap();
        let serial = serial_of(&leaf);
        CachedSvid {
            entry,
            chain: vec![leaf],
            key,
            not_before,
            not_after,
            serial,
        }
    }

    /// A snapshot of `svids` carrying only this trust domain's bundle.
    pub fn snapshot(&self, svids: Vec<Arc<CachedSvid>>, generation: u64) -> Arc<Snapshot> {
        snapshot(&self.td, vec![self.bundle()], svids, generation)
    }

    /// An SVID valid for the next hour.
    pub fn fresh_svid(&self, entry: EntryInfo) -> Arc<CachedSvid> {
        let now = SystemTime::now();
        Arc::new(self.svid(
            entry,
            now - Duration::from_secs(60),
            now + Duration::from_secs(3600),
        ))
    }
}

/// The hex serial of a DER certificate.
pub fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    hex::encode(cert.raw_serial())
}

/// An entry granting `id` to callers with all of `selectors` (`uid:0`…,
/// of type `unix`).
pub fn entry(entry_id: &str, id: &str, selectors: &[&str]) -> EntryInfo {
    EntryInfo {
        id: entry_id.into(),
        spiffe_id: SpiffeId::parse(id).unwrap(),
        selectors: selectors
            .iter()
            .map(|s| Selector::new("unix", s).unwrap())
            .collect(),
        federates_with: vec![],
        hint: String::new(),
        revision: 1,
        dns_names: vec![],
    }
}

/// An entry granting `id` to this test process (its uid).
pub fn my_entry(entry_id: &str, id: &str) -> EntryInfo {
    entry(entry_id, id, &[&my_uid_selector()])
}

/// A snapshot of `svids` with `bundles`.
pub fn snapshot(
    td: &TrustDomain,
    bundles: Vec<TrustBundle>,
    svids: Vec<Arc<CachedSvid>>,
    generation: u64,
) -> Arc<Snapshot> {
    let set: BundleSet = bundles.into_iter().collect();
    Arc::new(Snapshot::new(
        Arc::new(set),
        Some(td.clone()),
        svids,
        generation,
    ))
}

/// `uid:<our uid>`, the selector of this test process.
pub fn my_uid_selector() -> String {
    format!("uid:{}", nix::unistd::getuid().as_raw())
}
