//! Node attestation against an in-memory CA: persistence, restart,
//! renewal, eviction and bans.
#![allow(clippy::unwrap_used)]

#[path = "support/fake_ca.rs"]
mod fake_ca;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use fake_ca::{FakeCa, signals, t0};
use meshid_agent::attest::{AttestConfig, AttestError, Attestor, store};
use meshid_agent::config::JoinToken;
use meshid_runtime::clock::{ManualClock, SharedClock, TokioClock};

fn attestor(
    ca: &Arc<FakeCa>,
    clock: SharedClock,
    dir: &std::path::Path,
    token: Option<&str>,
) -> Attestor {
    Attestor::new(
        AttestConfig {
            trust_domain: ca.td.clone(),
            data_dir: dir.to_owned(),
            join_token: token.map(JoinToken::new),
            k8s_psat: None,
            bootstrap_bundle: Some(ca.trust_bundle()),
            renew_fraction: 0.5,
        },
        ca.clone(),
        clock,
    )
}

#[tokio::test]
async fn attests_once_persists_0600_and_reuses_identity_after_restart() {
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let ca = FakeCa::new(clock.clone());
    ca.lock().tokens.insert("tok1".into());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let first = attestor(&ca, clock.clone(), &data, Some("tok1"))
        .start()
        .await
        .unwrap();
    assert_eq!(
        first.spiffe_id.as_str(),
        "spiffe://example.org/agent/join_token/tok1"
    );
    assert_eq!(ca.lock().attests, 1);
    assert!(ca.lock().creds.is_some(), "mTLS credentials installed");
    for f in [store::KEY_FILE, store::SVID_FILE, store::BUNDLE_FILE] {
        let mode = std::fs::metadata(data.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(
        !std::fs::read_dir(&data)
            .unwrap()
            .any(|e| { e.unwrap().path().extension().is_some_and(|x| x == "tmp") })
    );

    // Restart without a token: the stored identity is reused, no new attestation.
    ca.lock().creds = None;
    let again = attestor(&ca, clock.clone(), &data, None)
        .start()
        .await
        .unwrap();
    assert_eq!(ca.lock().attests, 1);
    assert_eq!(again.spiffe_id, first.spiffe_id);
    assert_eq!(again.key.pkcs8_der(), first.key.pkcs8_der());
    assert_eq!(again.chain, first.chain);
    assert!(ca.lock().creds.is_some());
}

#[tokio::test]
async fn no_token_and_no_state_is_a_clear_error() {
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let ca = FakeCa::new(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    let err = attestor(&ca, clock, dir.path(), None)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, AttestError::NoToken));
    assert!(err.to_string().contains("MESHID_JOIN_TOKEN"));
}

#[tokio::test]
async fn refused_join_token_says_to_create_a_new_one() {
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let ca = FakeCa::new(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    let err = attestor(&ca, clock, dir.path(), Some("wrong"))
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, AttestError::TokenRefused(_)), "{err}");
    assert!(err.to_string().contains("meshid token generate"));
    assert!(!dir.path().join(store::KEY_FILE).exists(), "nothing stored");
}

#[tokio::test]
async fn expired_stored_identity_without_token_is_refused() {
    let clock = ManualClock::new(t0());
    let ca = FakeCa::new(Arc::new(clock.clone()));
    ca.lock().tokens.insert("tok".into());
    let dir = tempfile::tempdir().unwrap();
    attestor(&ca, Arc::new(clock.clone()), dir.path(), Some("tok"))
        .start()
        .await
        .unwrap();
    clock.advance(Duration::from_secs(7200)); // agent TTL is 1 h
    let err = attestor(&ca, Arc::new(clock.clone()), dir.path(), None)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, AttestError::Expired(_)), "{err}");
    // With a token it attests again.
    attestor(&ca, Arc::new(clock.clone()), dir.path(), Some("tok"))
        .start()
        .await
        .unwrap();
    assert_eq!(ca.lock().attests, 2);
}

#[tokio::test]
async fn evicted_agent_reattests_with_its_token_and_stops_without_one() {
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let ca = FakeCa::new(clock.clone());
    ca.lock().tokens.insert("tok".into());
    let dir = tempfile::tempdir().unwrap();
    let a = attestor(&ca, clock.clone(), dir.path(), Some("tok"));
    let id = a.start().await.unwrap();

    let renewed = a.renew(&id).await.unwrap();
    assert_eq!(ca.lock().renewals, 1);
    assert_ne!(
        renewed.key.pkcs8_der(),
        id.key.pkcs8_der(),
        "fresh key on renewal"
    );

    ca.lock().agent_known = false; // evicted
    let back = a.renew(&renewed).await.unwrap();
    assert_eq!(ca.lock().attests, 2);
    assert!(ca.lock().agent_known);
    let stored = store::load(dir.path(), &ca.td).unwrap().unwrap();
    assert_eq!(
        stored.key.pkcs8_der(),
        back.key.pkcs8_der(),
        "new identity persisted"
    );

    ca.lock().agent_known = false;
    let no_token = attestor(&ca, clock, dir.path(), None);
    let err = no_token.renew(&back).await.unwrap_err();
    assert!(matches!(err, AttestError::Evicted(_)), "{err}");
}

#[tokio::test]
async fn banned_agent_stops_with_a_clear_error() {
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let ca = FakeCa::new(clock.clone());
    ca.lock().tokens.insert("tok".into());
    let dir = tempfile::tempdir().unwrap();
    let a = attestor(&ca, clock, dir.path(), Some("tok"));
    let id = a.start().await.unwrap();
    ca.lock().banned = true;
    let err = a.renew(&id).await.unwrap_err();
    assert!(matches!(err, AttestError::Banned(_)), "{err}");
    assert!(err.to_string().contains("banned"));
    assert_eq!(
        ca.lock().attests,
        1,
        "a banned agent does not try its token"
    );
}

#[tokio::test(start_paused = true)]
async fn agent_svid_is_renewed_at_half_life_and_early_when_kicked() {
    let clock: SharedClock = Arc::new(TokioClock::new(t0()));
    let ca = FakeCa::new(clock.clone());
    ca.lock().tokens.insert("tok".into());
    let dir = tempfile::tempdir().unwrap();
    let a = attestor(&ca, clock.clone(), dir.path(), Some("tok"));
    let id = a.start().await.unwrap();
    let (tx, mut rx) = tokio::sync::watch::channel(id.clone());
    let kick = Arc::new(tokio::sync::Notify::new());
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = {
        let kick = kick.clone();
        tokio::spawn(async move { a.maintain(id, tx, signals(kick, stop_rx)).await })
    };

    // Agent TTL 3600 s (+10 s backdate): renewal due ~1795 s from now.
    tokio::time::sleep(Duration::from_secs(1700)).await;
    assert_eq!(ca.lock().renewals, 0);
    rx.changed().await.unwrap();
    let elapsed = clock.now().duration_since(t0()).unwrap();
    assert!((1780..=1810).contains(&elapsed.as_secs()), "{elapsed:?}");
    assert_eq!(ca.lock().renewals, 1);

    // The manager saw the CA refuse the agent: renew (here: re-attest) at once.
    ca.lock().agent_known = false;
    kick.notify_one();
    rx.changed().await.unwrap();
    assert_eq!(ca.lock().attests, 2);
    assert!(clock.now().duration_since(t0()).unwrap() < Duration::from_secs(1900));

    ca.lock().banned = true;
    kick.notify_one();
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, AttestError::Banned(_)));
}

#[tokio::test(start_paused = true)]
async fn agent_svid_renewal_retries_at_most_10s_apart_while_the_ca_is_down() {
    let clock: SharedClock = Arc::new(TokioClock::new(t0()));
    let ca = FakeCa::new(clock.clone());
    ca.lock().tokens.insert("tok".into());
    let dir = tempfile::tempdir().unwrap();
    let a = attestor(&ca, clock.clone(), dir.path(), Some("tok"));
    let id = a.start().await.unwrap();
    let (tx, mut rx) = tokio::sync::watch::channel(id.clone());
    let kick = Arc::new(tokio::sync::Notify::new());
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    ca.lock().down = true;
    tokio::spawn(async move { a.maintain(id, tx, signals(kick, stop_rx)).await });

    // Renewal is due ~1795 s from now; the CA stays down well past it.
    tokio::time::sleep(Duration::from_secs(2400)).await;
    assert_eq!(ca.lock().renewals, 0);
    ca.lock().down = false;
    let back = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(11), rx.changed())
        .await
        .expect("renewed within one capped retry of the CA's return")
        .unwrap();
    assert!(
        back.elapsed() <= Duration::from_secs(10),
        "{:?}",
        back.elapsed()
    );
    assert_eq!(ca.lock().renewals, 1);
}

#[test]
fn concurrent_bundle_writes_never_share_a_temporary_file() {
    // The failure of an earlier second writer: two writes through one
    // temporary name renamed each other's file away (ENOENT) or a half
    // written one into place. Every write now has a temporary file of its own.
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let dir = tempfile::tempdir().unwrap();
    let bundles: Vec<_> = (0..4)
        .map(|_| FakeCa::new(clock.clone()).trust_bundle())
        .collect();
    std::thread::scope(|s| {
        for b in &bundles {
            let dir = dir.path();
            s.spawn(move || {
                for _ in 0..50 {
                    store::save_bundle(dir, b).unwrap();
                }
            });
        }
    });
    let text = std::fs::read(dir.path().join(store::BUNDLE_FILE)).unwrap();
    let stored =
        meshid_identity::TrustBundle::from_spiffe_json(bundles[0].trust_domain.clone(), &text)
            .unwrap();
    assert!(
        bundles
            .iter()
            .any(|b| b.x509_authorities == stored.x509_authorities)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left.len(),
        1,
        "only the bundle, no temporary file: {left:?}"
    );
}
