//! Manual rotation through the admin API, as `meshid ca rotation …` calls
//! it: prepare (once), activate (refused before the propagation delay
//! unless forced), taint of the active key (its successor is prepared at
//! once and activated after the delay; Sync lists the tainted key), revoke
//! (refused for the key that signs and while SVIDs it signed are live,
//! unless forced; then it leaves the bundle).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_ca::server::CaServer;
use meshid_ca::store::{KeyKind, SlotState};
use meshid_identity::PrivateKey;
use meshid_identity::x509::pem_certs;
use meshid_proto::ca::admin_client::AdminClient;
use meshid_proto::ca::{self as pb, AttestRequest, RenewAgentRequest, SyncRequest};
use meshid_runtime::clock::ManualClock;
use meshid_tests::node::csr;
use meshid_tests::{ClientSvid, node_client};
use rustls_pki_types::CertificateDer;
use tonic::Code;
use tonic::transport::Channel;

#[path = "support/server.rs"]
mod server;
#[path = "rotation/support.rs"]
mod support;

use support::slot;

const X509: i32 = pb::KeyKind::X509 as i32;
const JWT: i32 = pb::KeyKind::Jwt as i32;

async fn admin(ca: &CaServer) -> AdminClient<Channel> {
    let channel = meshid_runtime::uds::channel(ca.admin_socket.clone())
        .await
        .unwrap();
    AdminClient::new(channel)
}

/// An agent attested with a fresh join token: its key and SVID chain.
async fn attest(ca: &CaServer) -> (PrivateKey, Vec<CertificateDer<'static>>) {
    let (token, rec) = meshid_ca::node_attestor::join_token::generate(
        SystemTime::now(),
        Duration::from_secs(600),
        None,
    );
    ca.store.create_join_token(&rec).await.unwrap();
    let key = PrivateKey::generate_p256().unwrap();
    let bundle = ca.authority.bundle().as_ref().clone();
    let mut c = node_client(ca.node_addr, &bundle, None).await;
    let svid = c
        .attest(AttestRequest {
            attestation_type: "join_token".into(),
            payload: token.into_bytes(),
            csr: csr(&key),
        })
        .await
        .unwrap()
        .into_inner()
        .svid
        .unwrap();
    let chain = svid
        .cert_chain
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    (key, chain)
}

fn activate(kind: i32, force: bool) -> pb::ActivateKeyRequest {
    pb::ActivateKeyRequest { kind, force }
}

fn refused(e: &tonic::Status, code: Code, says: &str) {
    assert_eq!(e.code(), code, "{e:?}");
    assert!(
        e.message().contains(says),
        "{:?} lacks {says:?}",
        e.message()
    );
}

#[tokio::test]
async fn prepare_activate_taint_and_revoke_through_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let ca = support::start(support::config(dir.path()), &clock).await;
    let mut admin = admin(&ca).await;
    let (agent_key, agent_chain) = attest(&ca).await;
    let gen1 = slot(&ca, KeyKind::X509, SlotState::Active).await;

    // show: every slot, with the live SVIDs it signed (the agent's).
    let shown = admin
        .list_key_slots(pb::ListKeySlotsRequest {})
        .await
        .unwrap()
        .into_inner()
        .slots;
    assert_eq!(shown.len(), 2, "{shown:?}");
    let x = shown.iter().find(|s| s.key_id == gen1.key_id).unwrap();
    assert_eq!(x.state, pb::KeySlotState::Active as i32);
    assert_eq!(x.live_svids, 1);
    assert!(x.subject.contains("meshid root CA"), "{}", x.subject);

    // prepare: once; the new root is published at once.
    let gen2 = admin
        .prepare_key(pb::PrepareKeyRequest { kind: X509 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gen2.state, pb::KeySlotState::Prepared as i32);
    let root2 = pem_certs(
        &slot(&ca, KeyKind::X509, SlotState::Prepared)
            .await
            .roots_pem,
    )
    .unwrap();
    assert!(ca.authority.bundle().x509_authorities.contains(&root2[0]));
    let e = admin
        .prepare_key(pb::PrepareKeyRequest { kind: X509 })
        .await
        .unwrap_err();
    refused(&e, Code::FailedPrecondition, "prepared already");

    // activate: refused before the propagation delay, unless forced.
    let e = admin.activate_key(activate(X509, false)).await.unwrap_err();
    refused(&e, Code::FailedPrecondition, "propagation delay");
    let active = admin
        .activate_key(activate(X509, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (active.key_id.as_str(), active.state),
        (gen2.key_id.as_str(), pb::KeySlotState::Active as i32)
    );
    assert_eq!(ca.authority.load().x509_key_id(), gen2.key_id);
    let e = admin.activate_key(activate(X509, true)).await.unwrap_err();
    refused(&e, Code::FailedPrecondition, "no x509 key is prepared");

    // The agent renews: its new SVID is signed by generation 2.
    let bundle = ca.authority.bundle().as_ref().clone();
    let svid = ClientSvid {
        chain: &agent_chain,
        key: &agent_key,
    };
    let mut agent = node_client(ca.node_addr, &bundle, Some(svid)).await;
    let renewed = agent
        .renew_agent(RenewAgentRequest {
            csr: csr(&agent_key),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        support::aki(&renewed.svid.unwrap().cert_chain[0]),
        gen2.key_id
    );

    // taint the active key: a successor is prepared at once, Sync lists it.
    let tainted = admin
        .taint_key(pb::TaintKeyRequest {
            key_id: gen2.key_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(tainted.tainted);
    let gen3 = slot(&ca, KeyKind::X509, SlotState::Prepared).await;
    assert_eq!(gen3.generation, 3);
    let keys = agent
        .sync(SyncRequest::default())
        .await
        .unwrap()
        .into_inner()
        .ca_keys
        .unwrap();
    let raw2 = hex::decode(&gen2.key_id).unwrap();
    assert_eq!(keys.tainted, std::slice::from_ref(&raw2));
    assert_eq!(keys.active, [raw2]);
    assert_eq!(keys.reissue_spread_seconds, 60);
    // ...and activated once it has propagated.
    ca.engine.tick().await.unwrap();
    assert_eq!(
        ca.authority.load().x509_key_id(),
        gen2.key_id,
        "not before the delay"
    );
    clock.advance(Duration::from_secs(31));
    ca.engine.tick().await.unwrap();
    assert_eq!(ca.authority.load().x509_key_id(), gen3.key_id);
    assert_eq!(
        ca.authority.signing_keys().active,
        std::slice::from_ref(&gen3.key_id)
    );

    // revoke: refused for the key that signs, and while live SVIDs need it.
    let revoke = |key_id: &str, force| pb::RevokeKeyRequest {
        key_id: key_id.to_owned(),
        force,
    };
    let e = admin
        .revoke_key(revoke(&gen3.key_id, true))
        .await
        .unwrap_err();
    refused(&e, Code::FailedPrecondition, "activate another key first");
    let e = admin
        .revoke_key(revoke(&gen1.key_id, false))
        .await
        .unwrap_err();
    refused(&e, Code::FailedPrecondition, "1 unexpired SVIDs");
    let e = admin
        .revoke_key(revoke("feedface", false))
        .await
        .unwrap_err();
    refused(&e, Code::NotFound, "feedface");
    let root1 = pem_certs(&gen1.roots_pem).unwrap();
    let seq = support::sequence(&ca).await;
    admin.revoke_key(revoke(&gen1.key_id, true)).await.unwrap();
    assert!(!ca.authority.bundle().x509_authorities.contains(&root1[0]));
    assert!(support::sequence(&ca).await > seq);
    assert!(
        ca.store
            .list_key_slots()
            .await
            .unwrap()
            .iter()
            .all(|s| s.key_id != gen1.key_id)
    );

    // JWT keys: the same prepare → activate.
    let jwt2 = admin
        .prepare_key(pb::PrepareKeyRequest { kind: JWT })
        .await
        .unwrap()
        .into_inner();
    assert!(ca.authority.bundle().jwt_authority(&jwt2.key_id).is_some());
    admin.activate_key(activate(JWT, true)).await.unwrap();
    assert_eq!(ca.authority.load().jwt_key_id(), jwt2.key_id);
    let e = admin
        .prepare_key(pb::PrepareKeyRequest { kind: 0 })
        .await
        .unwrap_err();
    refused(&e, Code::InvalidArgument, "x509 or jwt");
    ca.shutdown().await.unwrap();
}
