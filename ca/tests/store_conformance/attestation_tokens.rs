//! Attestation tokens (#14): a `k8s_psat` token's hash is recorded once
//! until it expires, atomically across concurrent callers; expired rows are
//! reclaimed.

use std::sync::Arc;
use std::time::Duration;

use meshid_ca::store::{Store, StoreError};
use meshid_runtime::clock::ManualClock;

use super::{at, sha};

/// Where these tests start the store's clock.
const T0: u64 = 1_900_000_000;
const PSAT: &str = "k8s_psat";

pub(super) async fn attestation_tokens_are_recorded_once_until_they_expire(
    s: Arc<dyn Store>,
    clock: ManualClock,
) {
    clock.set(at(T0));
    let a = sha("token-a");
    let b = sha("token-b");
    s.record_attestation_token(PSAT, &a, at(T0 + 60))
        .await
        .unwrap();
    // A second use before expiry is a conflict naming when it frees up.
    match s.record_attestation_token(PSAT, &a, at(T0 + 3600)).await {
        Err(StoreError::Conflict { kind, detail, .. }) => {
            assert_eq!(kind, "attestation token");
            assert!(detail.starts_with("already recorded until "), "{detail}");
        }
        other => panic!("replayed token: {other:?}"),
    }
    // Another token is independent.
    s.record_attestation_token(PSAT, &b, at(T0 + 10))
        .await
        .unwrap();
    // Still recorded one second before expiry (the earlier conflict did not
    // extend it, nor shorten it).
    clock.set(at(T0 + 59));
    assert!(matches!(
        s.record_attestation_token(PSAT, &a, at(T0 + 120)).await,
        Err(StoreError::Conflict { .. })
    ));
    // At expiry the hash may be recorded again (its row is reclaimed).
    clock.set(at(T0 + 60));
    s.record_attestation_token(PSAT, &a, at(T0 + 120))
        .await
        .unwrap();
    assert!(matches!(
        s.record_attestation_token(PSAT, &a, at(T0 + 120)).await,
        Err(StoreError::Conflict { .. })
    ));
    clock.set(at(T0 + 120) + Duration::from_millis(1));
    s.record_attestation_token(PSAT, &b, at(T0 + 200))
        .await
        .unwrap();
}

pub(super) async fn bad_attestation_tokens_are_refused(s: Arc<dyn Store>, _clock: ManualClock) {
    for hash in [&[][..], &[0u8; 31][..], &[0u8; 33][..]] {
        assert!(
            matches!(
                s.record_attestation_token(PSAT, hash, at(T0)).await,
                Err(StoreError::Invalid(_))
            ),
            "{} bytes",
            hash.len()
        );
    }
    assert!(matches!(
        s.record_attestation_token("", &sha("x"), at(T0)).await,
        Err(StoreError::Invalid(_))
    ));
}

pub(super) async fn racing_attestations_with_one_token_have_one_winner(
    s: Arc<dyn Store>,
    clock: ManualClock,
) {
    clock.set(at(T0));
    let hash = sha("raced");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        let hash = hash.clone();
        tasks.push(tokio::spawn(async move {
            s.record_attestation_token(PSAT, &hash, at(T0 + 600)).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => panic!("racing record: {e}"),
        }
    }
    assert_eq!(won, 1);
}
