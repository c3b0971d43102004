use super::*;

use meshid_identity::x509::{
    CaTemplate, SvidTemplate, authority_key_id, self_signed_ca, sign_svid,
};
use meshid_identity::{PrivateKey, SpiffeId, TrustDomain};

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A leaf signed by a fresh CA, and that CA's key ID as its leaves carry it.
fn leaf() -> (Vec<u8>, Vec<u8>) {
    let ca_key = PrivateKey::generate_p256().unwrap();
    let kp = ca_key.key_pair().unwrap();
    let root = self_signed_ca(
        &CaTemplate {
            trust_domain: TrustDomain::new("example.org").unwrap(),
            common_name: "root".into(),
            not_before: t0(),
            not_after: t0() + Duration::from_secs(86400),
            path_len: None,
        },
        &kp,
    )
    .unwrap();
    let key = PrivateKey::generate_p256().unwrap();
    let leaf = sign_svid(
        &SvidTemplate {
            spiffe_id: SpiffeId::parse("spiffe://example.org/w").unwrap(),
            dns_names: vec![],
            not_before: t0(),
            not_after: t0() + Duration::from_secs(3600),
        },
        &key.public_key_der(),
        &root,
        &kp,
    )
    .unwrap();
    let aki = authority_key_id(&leaf).expect("SVIDs carry an AKI");
    (leaf.to_vec(), aki)
}

fn keys(active: &[&[u8]], tainted: &[&[u8]], spread: u32) -> Arc<CaKeys> {
    let wire = meshid_proto::ca::CaKeys {
        active: active.iter().map(|k| k.to_vec()).collect(),
        tainted: tainted.iter().map(|k| k.to_vec()).collect(),
        reissue_spread_seconds: spread,
    };
    Arc::new(CaKeys::from_wire(Some(&wire)).unwrap().unwrap())
}

#[test]
fn the_aki_of_a_leaf_is_its_issuers_key_id() {
    let (a, aki_a) = leaf();
    let (_, aki_b) = leaf();
    assert!(!aki_a.is_empty());
    assert_ne!(aki_a, aki_b, "each CA has its own key ID");
    assert_eq!(authority_key_id(&a), Some(aki_a));
    assert_eq!(authority_key_id(b"not a certificate"), None);
}

#[test]
fn tainted_means_now_and_inactive_means_within_the_spread() {
    let (der, aki) = leaf();
    let now = t0();
    let mut w = KeyWatch::new(&der, None);
    w.update(Some(&keys(&[b"other"], &[&aki], 60)), now);
    let p = w.plan().unwrap();
    assert_eq!((p.reason, p.at), (Reason::Taint, now));

    let mut ats = BTreeSet::new();
    for _ in 0..20 {
        let mut w = KeyWatch::new(&der, None);
        w.update(Some(&keys(&[b"new"], &[], 60)), now);
        let p = w.plan().unwrap();
        assert_eq!(p.reason, Reason::Rotation);
        assert!(p.at >= now && p.at <= now + Duration::from_secs(60));
        ats.insert(p.at);
    }
    assert!(ats.len() > 1, "points are spread: {ats:?}");
}

#[test]
fn active_keys_absent_state_and_unmatched_leaves_keep_the_svid() {
    let (der, aki) = leaf();
    let mut w = KeyWatch::new(&der, None);
    w.update(Some(&keys(&[&aki, b"other-replica"], &[], 60)), t0());
    assert!(w.plan().is_none(), "signed by an active key");
    w.update(Some(&keys(&[], &[], 60)), t0());
    assert!(
        w.plan().is_none(),
        "no active key listed: nothing to compare"
    );
    w.update(Some(&keys(&[b"new"], &[], 60)), t0());
    assert!(w.plan().is_some());
    w.update(None, t0());
    assert!(w.plan().is_none(), "a CA without key state: as before");
    let mut w = KeyWatch::new(b"garbage", None);
    w.update(Some(&keys(&[b"new"], &[b"x"], 60)), t0());
    assert!(w.plan().is_none(), "no AKI, nothing to match");
}

#[test]
fn the_point_is_drawn_once_per_key_set() {
    let (der, _) = leaf();
    let k = keys(&[b"new"], &[], 3600);
    let mut w = KeyWatch::new(&der, None);
    w.update(Some(&k), t0());
    let first = w.plan().unwrap().at;
    for i in 1..20 {
        // A new sync with equal keys (a new Arc) keeps the point.
        w.update(
            Some(&keys(&[b"new"], &[], 3600)),
            t0() + Duration::from_secs(i),
        );
        assert_eq!(w.plan().unwrap().at, first);
    }
    // A changed set decides again.
    w.update(
        Some(&keys(&[b"newer"], &[], 0)),
        t0() + Duration::from_secs(99),
    );
    assert_eq!(w.plan().unwrap().at, t0() + Duration::from_secs(99));
}

#[test]
fn an_svid_issued_under_the_current_keys_is_not_replanned() {
    let (der, aki) = leaf();
    let k = keys(&[b"successor"], &[&aki], 0);
    let mut w = KeyWatch::new(&der, Some(k.clone()));
    w.update(Some(&keys(&[b"successor"], &[&aki], 0)), t0());
    assert!(
        w.plan().is_none(),
        "the CA still signed with the tainted key: wait for the next key change"
    );
    w.update(Some(&keys(&[b"successor-2"], &[&aki], 0)), t0());
    assert_eq!(w.plan().unwrap().reason, Reason::Taint);
}

#[test]
fn oversized_key_lists_are_refused() {
    let wire = meshid_proto::ca::CaKeys {
        active: vec![vec![1u8; 20]; MAX_KEYS + 1],
        ..Default::default()
    };
    assert!(CaKeys::from_wire(Some(&wire)).is_err());
    let wire = meshid_proto::ca::CaKeys {
        tainted: vec![vec![1u8; MAX_KEY_ID_LEN + 1]],
        ..Default::default()
    };
    assert!(CaKeys::from_wire(Some(&wire)).is_err());
    assert!(CaKeys::from_wire(None).unwrap().is_none());
}
