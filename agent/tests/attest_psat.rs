//! Node attestation with a projected service-account token (`k8s_psat`)
//! against an in-memory CA: the payload, the token re-read at every attempt,
//! re-attestation after eviction and after expiry, refused tokens retried
//! with the CA backoff.
#![allow(clippy::unwrap_used)]

#[path = "support/fake_ca.rs"]
mod fake_ca;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fake_ca::{FakeCa, signals, t0};
use meshid_agent::attest::psat::K8sPsatConfig;
use meshid_agent::attest::{AttestConfig, AttestError, Attestor};
use meshid_runtime::clock::{ManualClock, SharedClock, TokioClock};

fn attestor(ca: &Arc<FakeCa>, clock: SharedClock, dir: &Path) -> Attestor {
    Attestor::new(
        AttestConfig {
            trust_domain: ca.td.clone(),
            data_dir: dir.join("data"),
            join_token: None,
            k8s_psat: Some(K8sPsatConfig {
                cluster: "prod".into(),
                token_path: dir.join("token"),
            }),
            bootstrap_bundle: Some(ca.trust_bundle()),
            renew_fraction: 0.5,
        },
        ca.clone(),
        clock,
    )
}

/// The kubelet writes a new projected token.
fn rotate_token(ca: &FakeCa, dir: &Path, token: &str) {
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    ca.lock().psat_tokens.insert(token.into());
}

#[tokio::test]
async fn attests_with_the_cluster_and_the_token_file() {
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let ca = FakeCa::new(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    rotate_token(&ca, dir.path(), "jwt-1");
    let id = attestor(&ca, clock, dir.path()).start().await.unwrap();
    assert_eq!(
        id.spiffe_id.as_str(),
        "spiffe://example.org/agent/k8s_psat/prod/node-uid-1"
    );
    let st = ca.lock();
    assert_eq!(
        st.psat_payloads,
        [serde_json::json!({"cluster": "prod", "token": "jwt-1"})]
    );
    assert!(st.creds.is_some());
}

#[tokio::test]
async fn a_refused_or_missing_token_is_retryable_and_the_next_attempt_rereads_it() {
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let ca = FakeCa::new(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    let a = attestor(&ca, clock, dir.path());

    let err = a.start().await.unwrap_err();
    assert!(
        matches!(err, AttestError::Psat(_)) && err.is_retryable(),
        "{err}"
    );
    assert!(err.to_string().contains("token"), "{err}");

    // A token the CA has seen before (replay): refused with its reason.
    std::fs::write(dir.path().join("token"), "jwt-old").unwrap();
    let err = a.start().await.unwrap_err();
    assert!(
        matches!(err, AttestError::PsatRefused(_)) && err.is_retryable(),
        "{err}"
    );
    assert!(err.to_string().contains("already used"), "{err}");

    rotate_token(&ca, dir.path(), "jwt-2");
    a.start().await.unwrap();
    let tokens: Vec<_> = ca
        .lock()
        .psat_payloads
        .iter()
        .map(|p| p["token"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tokens, ["jwt-old", "jwt-2"]);
}

#[tokio::test]
async fn an_expired_stored_svid_attests_again_instead_of_failing() {
    let manual = Arc::new(ManualClock::new(t0()));
    let clock: SharedClock = manual.clone();
    let ca = FakeCa::new(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    rotate_token(&ca, dir.path(), "jwt-1");
    attestor(&ca, clock.clone(), dir.path())
        .start()
        .await
        .unwrap();
    manual.advance(Duration::from_secs(7200)); // agent TTL is 1 h
    rotate_token(&ca, dir.path(), "jwt-2");
    attestor(&ca, clock, dir.path()).start().await.unwrap();
    assert_eq!(ca.lock().attests, 2);
}

#[tokio::test]
async fn banned_agents_stop() {
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let ca = FakeCa::new(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    rotate_token(&ca, dir.path(), "jwt-1");
    ca.lock().banned = true;
    let err = attestor(&ca, clock, dir.path()).start().await.unwrap_err();
    assert!(matches!(err, AttestError::Banned(_)) && !err.is_retryable());
}

#[tokio::test(start_paused = true)]
async fn eviction_reattests_and_refusals_are_retried_with_backoff_rereading_the_token() {
    let clock: SharedClock = Arc::new(TokioClock::new(t0()));
    let ca = FakeCa::new(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    rotate_token(&ca, dir.path(), "jwt-1");
    let a = attestor(&ca, clock.clone(), dir.path());
    let id = a.start().await.unwrap();
    let (tx, mut rx) = tokio::sync::watch::channel(id.clone());
    let kick = Arc::new(tokio::sync::Notify::new());
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    {
        let kick = kick.clone();
        tokio::spawn(async move { a.maintain(id, tx, signals(kick, stop_rx)).await });
    }

    // Evicted; the token on disk was already used: refused, retried.
    ca.lock().agent_known = false;
    kick.notify_one();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let refused = ca.lock().psat_payloads.len() - 1;
    // The CA backoff: 1 s doubling to 10 s over 60 s is about 8 attempts, never a spin.
    assert!((4..=12).contains(&refused), "{refused} attempts");
    assert_eq!(ca.lock().attests, 1);

    // The kubelet rotates the token: the next attempt uses it and succeeds.
    rotate_token(&ca, dir.path(), "jwt-2");
    let back = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(11), rx.changed())
        .await
        .expect("re-attested within one capped retry")
        .unwrap();
    assert!(back.elapsed() <= Duration::from_secs(10));
    assert_eq!(ca.lock().attests, 2);
    assert_eq!(ca.lock().psat_payloads.last().unwrap()["token"], "jwt-2");
    // Attested, not renewed: the agent does not renew without credentials.
    assert_eq!(ca.lock().renewals, 0);
}
