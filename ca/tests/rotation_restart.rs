//! A CA restarted on the same data directory and store adopts its key
//! journal: the generations go on, no new root is made while the active
//! one is valid, and a data directory of a CA from before the journal
//! (its `x509-ca` key, `ca.crt.pem` and `jwt` key, no slots) is adopted as
//! generation 1.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::SystemTime;

use meshid_ca::config::CaConfig;
use meshid_ca::store::{KeyKind, SlotState, StoreUrl};
use meshid_identity::x509::pem_certs;
use meshid_runtime::clock::ManualClock;

#[path = "support/server.rs"]
mod server;
#[path = "rotation/support.rs"]
mod support;

use support::slot;

#[tokio::test]
async fn a_restart_adopts_the_journal_and_the_generations_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let ca = support::start(support::config(dir.path()), &clock).await;
    let gen1 = slot(&ca, KeyKind::X509, SlotState::Active).await;
    let jwt1 = slot(&ca, KeyKind::Jwt, SlotState::Active).await;
    ca.engine.prepare(KeyKind::X509).await.unwrap();
    let gen2 = ca.engine.activate(KeyKind::X509, true).await.unwrap();
    let replica = ca.engine.replica().clone();
    let bundle = ca.authority.bundle();
    ca.shutdown().await.unwrap();

    let ca = support::start(support::config(dir.path()), &clock).await;
    assert_eq!(*ca.engine.replica(), replica, "the replica ID is kept");
    let active = slot(&ca, KeyKind::X509, SlotState::Active).await;
    assert_eq!(
        (active.id.as_str(), active.key_id.as_str()),
        (gen2.id.as_str(), gen2.key_id.as_str())
    );
    assert_eq!(ca.authority.load().x509_key_id(), gen2.key_id);
    assert_eq!(slot(&ca, KeyKind::X509, SlotState::Old).await.id, gen1.id);
    assert_eq!(ca.authority.load().jwt_key_id(), jwt1.key_id);
    assert_eq!(
        ca.authority.bundle().x509_authorities,
        bundle.x509_authorities
    );
    assert_eq!(
        ca.authority.bundle().sequence,
        bundle.sequence,
        "nothing changed"
    );
    assert!(
        !dir.path().join("ca-3.crt.pem").exists(),
        "no new root while the active one is valid"
    );
    let gen3 = ca.engine.prepare(KeyKind::X509).await.unwrap();
    assert_eq!(gen3.generation, 3, "generations go on");
    ca.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_data_dir_from_before_the_journal_is_adopted_as_generation_1() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let ca = support::start(support::config(dir.path()), &clock).await;
    let root = pem_certs(&std::fs::read_to_string(dir.path().join("ca.crt.pem")).unwrap()).unwrap();
    let jwt = ca.authority.load().jwt_key_id().to_owned();
    ca.shutdown().await.unwrap();

    // The same keys and root, a store that has no journal yet (the
    // migration dropped the old key table).
    let fresh = dir.path().join("fresh.db");
    let cfg = CaConfig {
        store: Some(StoreUrl::sqlite_file(&fresh)),
        ..support::config(dir.path())
    };
    let ca = support::start(cfg, &clock).await;
    let x = slot(&ca, KeyKind::X509, SlotState::Active).await;
    assert_eq!((x.generation, x.key_slot.as_str()), (1, "x509-ca"));
    assert_eq!(pem_certs(&x.roots_pem).unwrap(), root);
    assert_eq!(ca.authority.bundle().x509_authorities, root);
    let j = slot(&ca, KeyKind::Jwt, SlotState::Active).await;
    assert_eq!(
        (j.generation, j.key_slot.as_str(), j.key_id.as_str()),
        (1, "jwt", jwt.as_str())
    );
    ca.shutdown().await.unwrap();
}
