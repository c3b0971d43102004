//! A self-signed CA driven by a manual clock through a full automatic
//! rotation of its root and of its JWT key: generation 1 signs; at 1/2 of
//! its life generation 2 is prepared and published (the bundle's sequence
//! grows) while generation 1 still signs; at 5/6 generation 2 signs and
//! Sync's active key changes; generation 1 stays in the bundle until the
//! last SVID it could have signed has expired, then leaves it.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_ca::store::{KeyKind, SlotState};
use meshid_identity::BundleSet;
use meshid_identity::x509::pem_certs;
use meshid_runtime::clock::{Clock, ManualClock};

#[path = "support/server.rs"]
mod server;
#[path = "rotation/support.rs"]
mod support;

use support::{CA_TTL, SVID_TTL, aki, sequence, sign, slot, verifies};

/// The key IDs of the JWT authorities the CA serves.
fn jwt_kids(ca: &meshid_ca::server::CaServer) -> Vec<String> {
    let bundle = ca.authority.bundle();
    bundle
        .jwt_authorities
        .iter()
        .map(|k| k.key_id.clone())
        .collect()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

fn jwt(ca: &meshid_ca::server::CaServer, now: SystemTime) -> String {
    let id = "spiffe://example.org/ns/payments/sa/api".parse().unwrap();
    let aud = ["orders".to_owned()];
    let authority = ca.authority.load();
    authority
        .mint_jwt_svid(&id, &aud, Duration::ZERO, Duration::ZERO, now)
        .unwrap()
        .0
}

fn jwt_verifies(ca: &meshid_ca::server::CaServer, token: &str, now: SystemTime) -> bool {
    let bundles: BundleSet = [ca.authority.bundle().as_ref().clone()]
        .into_iter()
        .collect();
    meshid_identity::jwt::validate(token, "orders", &bundles, now).is_ok()
}

#[tokio::test]
async fn the_root_and_the_jwt_key_rotate_on_schedule_published_before_they_sign() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = SystemTime::now();
    let clock = Arc::new(ManualClock::new(t0));
    let ca = support::start(support::config(dir.path()), &clock).await;

    // Generation 1 signs.
    let x1 = slot(&ca, KeyKind::X509, SlotState::Active).await;
    let j1 = slot(&ca, KeyKind::Jwt, SlotState::Active).await;
    assert_eq!((x1.generation, j1.generation), (1, 1));
    let root1 = pem_certs(&x1.roots_pem).unwrap();
    assert_eq!(ca.authority.bundle().x509_authorities, root1);
    let svid1 = sign(&ca, t0);
    assert_eq!(aki(&svid1[0]), x1.key_id);
    let token1 = jwt(&ca, t0);
    assert_eq!(
        ca.authority.signing_keys().active,
        std::slice::from_ref(&x1.key_id)
    );
    let seq1 = sequence(&ca).await;
    // When each key's life reaches `f` (the root's notBefore is backdated
    // a little; the JWT key's life is ca_ttl too): the later of the two.
    let at = |f: f64| {
        [&x1, &j1]
            .iter()
            .map(|s| s.not_before + s.not_after.duration_since(s.not_before).unwrap().mul_f64(f))
            .max()
            .unwrap()
    };
    assert!(x1.not_after.duration_since(x1.not_before).unwrap() >= CA_TTL);

    // Not yet at half its life: nothing happens.
    clock.set(x1.not_before.min(j1.not_before) + CA_TTL / 2 - Duration::from_secs(5));
    ca.engine.tick().await.unwrap();
    assert_eq!(sequence(&ca).await, seq1);

    // Half its life: generation 2 is prepared and published, not signing.
    clock.set(at(0.5) + Duration::from_secs(1));
    ca.engine.tick().await.unwrap();
    let x2 = slot(&ca, KeyKind::X509, SlotState::Prepared).await;
    let j2 = slot(&ca, KeyKind::Jwt, SlotState::Prepared).await;
    assert_eq!((x2.generation, j2.generation), (2, 2));
    let root2 = pem_certs(&x2.roots_pem).unwrap();
    let mut both = root1.clone();
    both.extend(root2.iter().cloned());
    assert_eq!(ca.authority.bundle().x509_authorities, both);
    let kids = jwt_kids(&ca);
    assert_eq!(kids, [j1.key_id.clone(), j2.key_id.clone()]);
    let seq2 = sequence(&ca).await;
    assert!(seq2 > seq1, "the prepared root moved the sequence");
    let now = clock.now();
    assert_eq!(
        aki(&sign(&ca, now)[0]),
        x1.key_id,
        "generation 1 still signs"
    );
    assert!(!jwt(&ca, now).is_empty());
    assert_eq!(ca.authority.load().jwt_key_id(), j1.key_id);
    assert_eq!(
        ca.authority.signing_keys().active,
        std::slice::from_ref(&x1.key_id)
    );

    // 5/6 of its life: generation 2 signs; Sync's active key changes.
    clock.set(at(5.0 / 6.0) + Duration::from_secs(1));
    ca.engine.tick().await.unwrap();
    let now = clock.now();
    let active = slot(&ca, KeyKind::X509, SlotState::Active).await;
    assert_eq!(active.id, x2.id);
    let old = slot(&ca, KeyKind::X509, SlotState::Old).await;
    assert_eq!(old.id, x1.id);
    assert_eq!(old.publish_until, Some(old.retired_at.unwrap() + SVID_TTL));
    let svid2 = sign(&ca, now);
    assert_eq!(aki(&svid2[0]), x2.key_id);
    assert!(
        verifies(&ca, &svid2, now),
        "new SVIDs chain to the new root"
    );
    assert!(
        verifies(&ca, &svid1, t0 + Duration::from_secs(1)),
        "old ones still verify"
    );
    assert_eq!(
        ca.authority.signing_keys().active,
        std::slice::from_ref(&x2.key_id)
    );
    assert_eq!(ca.authority.load().jwt_key_id(), j2.key_id);
    let token2 = jwt(&ca, now);
    assert!(jwt_verifies(&ca, &token2, now));
    assert!(
        jwt_verifies(&ca, &token1, t0 + Duration::from_secs(1)),
        "both keys published"
    );
    let mut roots = root2.clone();
    roots.extend(root1.iter().cloned());
    assert_eq!(ca.authority.bundle().x509_authorities, roots);
    // The expiry of both authorities in the bundle and of this replica's
    // active keys, and the steps taken, are metrics.
    let metrics = ca.metrics.encode();
    for want in [
        format!(
            "meshid_ca_bundle_authority_expiry_seconds{{key_id=\"{}\"}} {}",
            x1.key_id,
            unix(x1.not_after)
        ),
        format!(
            "meshid_ca_bundle_authority_expiry_seconds{{key_id=\"{}\"}} {}",
            x2.key_id,
            unix(x2.not_after)
        ),
        format!(
            "meshid_ca_key_expiry_seconds{{kind=\"x509\",state=\"active\"}} {}",
            unix(x2.not_after)
        ),
        "meshid_ca_rotation_steps_total{kind=\"x509\",step=\"prepare\"} 1".to_owned(),
        "meshid_ca_rotation_steps_total{kind=\"jwt\",step=\"activate\"} 1".to_owned(),
    ] {
        assert!(
            metrics.lines().any(|l| l == want),
            "{want} missing:\n{metrics}"
        );
    }

    // The old root stays until the last SVID it could have signed expired...
    clock.set(old.publish_until.unwrap() - Duration::from_secs(1));
    ca.engine.tick().await.unwrap();
    assert_eq!(ca.authority.bundle().x509_authorities, roots);
    let seq3 = sequence(&ca).await;
    // ...then it leaves the bundle and the journal, and so does the old JWT key.
    clock.set(old.publish_until.unwrap() + Duration::from_secs(1));
    ca.engine.tick().await.unwrap();
    assert_eq!(ca.authority.bundle().x509_authorities, root2);
    let kids = jwt_kids(&ca);
    assert_eq!(kids, std::slice::from_ref(&j2.key_id));
    assert!(sequence(&ca).await > seq3);
    let slots = ca.store.list_key_slots().await.unwrap();
    assert!(slots.iter().all(|s| s.generation == 2), "{slots:?}");
    assert!(!jwt_verifies(&ca, &token1, t0 + Duration::from_secs(1)));
    ca.shutdown().await.unwrap();
}
