//! A CA rotation as open streams see it: the SVID manager syncs against an
//! in-memory CA that rotates its root; an open Workload API X.509 stream
//! and an open SDS stream get the bundle with the new root pushed after the
//! sync that brought it (the SVID unchanged), then, after a taint of the
//! old key, the SVID re-issued under the new key.
#![allow(clippy::unwrap_used)]

#[path = "support/fake_ca.rs"]
mod fake_ca;
#[path = "workload_api/harness.rs"]
mod harness;

use std::sync::Arc;

use fake_ca::FakeCa;
use harness::{Agent, SdsAgent, client, next_message, x509_stream};
use meshid_agent::manager::{ManagerConfig, SvidManager};
use meshid_agent::metrics::AgentMetrics;
use meshid_identity::x509::authority_key_id;
use meshid_proto::envoy::pb::envoy::config::core::v3::data_source::Specifier;
use meshid_proto::envoy::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use meshid_proto::envoy::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use meshid_runtime::clock::{SharedClock, SystemClock};
use prost::{Message, Name};
use rustls_pki_types::CertificateDer;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn request(version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.into(),
        resource_names: vec!["default".into(), "ROOTCA".into()],
        type_url: Secret::type_url(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

/// The `default` certificate chain's leaf and the `ROOTCA` roots of an SDS
/// response.
fn sds_state(resp: &DiscoveryResponse) -> (Vec<u8>, Vec<CertificateDer<'static>>) {
    let mut leaf = None;
    let mut roots = None;
    for any in &resp.resources {
        let s = Secret::decode(any.value.as_slice()).unwrap();
        match s.r#type {
            Some(secret::Type::TlsCertificate(tls)) => {
                let Some(Specifier::InlineBytes(pem)) = tls.certificate_chain.unwrap().specifier
                else {
                    panic!("chain not inline")
                };
                let chain =
                    meshid_identity::x509::pem_certs(&String::from_utf8(pem).unwrap()).unwrap();
                leaf = Some(chain[0].to_vec());
            }
            Some(secret::Type::ValidationContext(vc)) => {
                let Some(Specifier::InlineBytes(pem)) = vc.trusted_ca.unwrap().specifier else {
                    panic!("roots not inline")
                };
                let text = String::from_utf8(pem).unwrap();
                roots = Some(meshid_identity::x509::pem_certs(&text).unwrap());
            }
            _ => panic!("unexpected secret {}", s.name),
        }
    }
    (leaf.unwrap(), roots.unwrap())
}

#[tokio::test]
async fn open_streams_get_the_new_root_then_the_svid_reissued_after_a_taint() {
    let clock: SharedClock = Arc::new(SystemClock);
    let ca = FakeCa::new(clock.clone());
    ca.pretend_attested();
    ca.add_entry("e0", "/api", nix::unistd::getuid().as_raw());
    let k1 = ca.key_id();
    let root1 = ca.root();
    ca.set_keys(&[&k1], &[], 60);
    let (mut m, handle) = SvidManager::new(
        ManagerConfig::new(ca.td.clone()),
        ca.clone(),
        clock,
        AgentMetrics::default(),
    );
    m.tick().await.unwrap();
    // The servers read the manager's snapshots (as `run` wires them).
    let wl = Agent::start(handle.snapshot()).await;
    let sds = SdsAgent::start(handle.snapshot());
    let publish = || {
        wl.publish(handle.snapshot());
        sds.publish(handle.snapshot());
    };

    let mut c = client(&wl.socket).await;
    let mut x509 = x509_stream(&mut c).await;
    let first = next_message(&mut x509).await;
    assert_eq!(first.svids[0].bundle, root1.to_vec());
    let mut sc = sds.client().await;
    let (req_tx, req_rx) = mpsc::channel(8);
    let mut secrets = sc
        .stream_secrets(ReceiverStream::new(req_rx))
        .await
        .unwrap()
        .into_inner();
    req_tx.send(request("", "")).await.unwrap();
    let r1 = next_message(&mut secrets).await;
    let (leaf1, roots1) = sds_state(&r1);
    assert_eq!(roots1, vec![root1.clone()]);
    req_tx
        .send(request(&r1.version_info, &r1.nonce))
        .await
        .unwrap();

    // Prepare: a new root joins the bundle; the old key still signs, as
    // far as the agent knows, so nothing is re-issued.
    ca.rotate();
    let root2 = ca.root();
    m.tick().await.unwrap();
    publish();
    let second = next_message(&mut x509).await;
    assert_eq!(
        second.svids[0].bundle,
        [root1.to_vec(), root2.to_vec()].concat(),
        "the new root pushed on the open stream"
    );
    assert_eq!(second.svids[0].x509_svid, first.svids[0].x509_svid);
    let r2 = next_message(&mut secrets).await;
    let (leaf2, roots2) = sds_state(&r2);
    assert_eq!(roots2, vec![root1, root2], "the new root pushed to Envoy");
    assert_eq!(leaf2, leaf1);
    req_tx
        .send(request(&r2.version_info, &r2.nonce))
        .await
        .unwrap();

    // Taint of the old key: the SVID is re-issued under the new one and
    // pushed on both streams.
    let k2 = ca.key_id();
    ca.set_keys(&[&k2], &[&k1], 3600);
    m.tick().await.unwrap();
    publish();
    let third = next_message(&mut x509).await;
    let leaf = meshid_identity::x509::split_chain(&third.svids[0].x509_svid).unwrap();
    assert_eq!(authority_key_id(&leaf[0]), Some(k2.clone()));
    assert_ne!(third.svids[0].x509_svid, first.svids[0].x509_svid);
    let r3 = next_message(&mut secrets).await;
    let (leaf3, _) = sds_state(&r3);
    assert_eq!(authority_key_id(&leaf3), Some(k2));
    assert_eq!(leaf3, leaf[0].to_vec());
}
