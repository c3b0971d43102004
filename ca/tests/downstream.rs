//! A meshid CA below another meshid CA of the same trust domain: the
//! downstream attests with a join token, its intermediate is signed by the
//! upstream under a `downstream` entry, its SVIDs chain to the upstream's
//! root (openssl verify -x509_strict), workloads of both CAs accept each
//! other in mTLS, and it renews its intermediate without a restart, also
//! across an upstream outage. The refusals name what to do.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use meshid_ca::config::DownstreamConfig;
use meshid_identity::x509::to_pem;

#[path = "downstream/refusals.rs"]
mod refusals;
#[path = "support/server.rs"]
mod server;
#[path = "downstream/setup.rs"]
mod setup;

use setup::{ALIAS, Ca, downstream_config, mtls, openssl_verify};

#[tokio::test]
async fn svids_of_a_downstream_chain_to_the_upstream_root_and_workloads_of_both_verify_each_other()
{
    let dir = tempfile::tempdir().unwrap();
    let up_dir = dir.path().join("upstream");
    let upstream = Ca::start(server::config(&up_dir), &up_dir).await;
    upstream.downstream_entry().await;
    let (token, _) = upstream.token(Some(ALIAS)).await;
    let down_dir = dir.path().join("downstream");
    let downstream = Ca::start(downstream_config(&upstream, &token, &down_dir), &down_dir).await;
    assert_eq!(downstream.server.authority.load().kind(), "meshid");
    // The downstream serves the upstream's roots.
    assert_eq!(
        downstream.bundle().x509_authorities,
        upstream.bundle().x509_authorities
    );

    let east = downstream.workload("east/api").await;
    let west = upstream.workload("west/api").await;
    // leaf -> downstream intermediate (-> root, not sent).
    assert_eq!(east.chain.len(), 2);
    let root = dir.path().join("root.pem");
    std::fs::write(&root, to_pem(&upstream.bundle().x509_authorities)).unwrap();
    openssl_verify(dir.path(), &root, &east.chain);
    openssl_verify(dir.path(), &root, &west.chain);

    // Each side trusts only its own CA's bundle.
    let (seen_by_east, seen_by_west) =
        mtls(&east, &downstream.bundle(), &west, &upstream.bundle()).await;
    assert_eq!(seen_by_east.as_str(), "spiffe://example.org/west/api");
    assert_eq!(seen_by_west.as_str(), "spiffe://example.org/east/api");
    let (a, b) = mtls(&west, &upstream.bundle(), &east, &downstream.bundle()).await;
    assert_eq!(
        (a.as_str(), b.as_str()),
        (
            "spiffe://example.org/east/api",
            "spiffe://example.org/west/api"
        )
    );
    downstream.server.shutdown().await.unwrap();
    upstream.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_downstream_renews_its_intermediate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let up_dir = dir.path().join("upstream");
    let cfg = meshid_ca::config::CaConfig {
        downstream: DownstreamConfig {
            ca_ttl: Duration::from_secs(4),
        },
        ..server::config(&up_dir)
    };
    let upstream = Ca::start(cfg, &up_dir).await;
    upstream.downstream_entry().await;
    let (token, _) = upstream.token(Some(ALIAS)).await;
    let down_dir = dir.path().join("downstream");
    let downstream = Ca::start(downstream_config(&upstream, &token, &down_dir), &down_dir).await;
    let first = downstream.server.authority.load().cert_chain()[0].clone();
    let renewed = meshid_tests::eventually_async(
        "the downstream to take a renewed intermediate",
        Duration::from_secs(20),
        || async {
            let now = downstream.server.authority.load().cert_chain()[0].clone();
            (now != first).then_some(now)
        },
    )
    .await;
    let svid = downstream.workload("east/after-renewal").await;
    assert_eq!(
        svid.chain[1], renewed,
        "new SVIDs chain to the new intermediate"
    );
    let root = dir.path().join("root.pem");
    std::fs::write(&root, to_pem(&upstream.bundle().x509_authorities)).unwrap();
    openssl_verify(dir.path(), &root, &svid.chain);
    downstream.server.shutdown().await.unwrap();
    upstream.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn while_the_upstream_is_down_the_downstream_keeps_signing_and_renews_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let up_dir = dir.path().join("upstream");
    let cfg = meshid_ca::config::CaConfig {
        listen: format!("127.0.0.1:{}", meshid_tests::free_port())
            .parse()
            .unwrap(),
        downstream: DownstreamConfig {
            ca_ttl: Duration::from_secs(8),
        },
        ..server::config(&up_dir)
    };
    let upstream = Ca::start(cfg.clone(), &up_dir).await;
    upstream.downstream_entry().await;
    let (token, _) = upstream.token(Some(ALIAS)).await;
    let down_dir = dir.path().join("downstream");
    let downstream = Ca::start(downstream_config(&upstream, &token, &down_dir), &down_dir).await;
    let first = downstream.server.authority.load().cert_chain()[0].clone();
    upstream.server.shutdown().await.unwrap();

    let metrics = downstream.server.metrics.clone();
    meshid_tests::eventually_async(
        "a failed renewal while the upstream is down",
        Duration::from_secs(20),
        || async {
            let text = metrics.encode();
            text.contains("meshid_ca_upstream_renewals_total{result=\"failed\"}")
                .then_some(())
        },
    )
    .await;
    let svid = downstream.workload("east/during-outage").await;
    assert_eq!(svid.chain[1], first, "still signing with the current one");

    let upstream = Ca::start(cfg, &up_dir).await;
    let renewed = meshid_tests::eventually_async(
        "a renewal once the upstream is back",
        Duration::from_secs(20),
        || async {
            let now = downstream.server.authority.load().cert_chain()[0].clone();
            (now != first).then_some(now)
        },
    )
    .await;
    assert!(
        metrics
            .encode()
            .contains("meshid_ca_upstream_renewals_total{result=\"applied\"} 1"),
        "{}",
        metrics.encode()
    );
    let svid = downstream.workload("east/after-outage").await;
    assert_eq!(svid.chain[1], renewed);
    downstream.server.shutdown().await.unwrap();
    upstream.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_downstream_renews_its_agent_svid_and_restarts_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let up_dir = dir.path().join("upstream");
    let cfg = meshid_ca::config::CaConfig {
        agent_ttl: Duration::from_secs(8),
        downstream: DownstreamConfig {
            ca_ttl: Duration::from_secs(4),
        },
        ..server::config(&up_dir)
    };
    let upstream = Ca::start(cfg, &up_dir).await;
    upstream.downstream_entry().await;
    let (token, _) = upstream.token(Some(ALIAS)).await;
    let down_dir = dir.path().join("downstream");
    let config = downstream_config(&upstream, &token, &down_dir);
    let downstream = Ca::start(config.clone(), &down_dir).await;
    let agent_file = down_dir.join(meshid_ca::upstream::meshid::AGENT_CERT_FILE);
    let first = std::fs::read(&agent_file).unwrap();
    meshid_tests::eventually_async(
        "the downstream to renew its agent SVID with the upstream",
        Duration::from_secs(20),
        || async { (std::fs::read(&agent_file).unwrap() != first).then_some(()) },
    )
    .await;
    let key_file = down_dir.join(meshid_ca::upstream::meshid::AGENT_KEY_FILE);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the agent key is private");
    downstream.server.shutdown().await.unwrap();

    // The token was used once; the stored agent SVID is enough to start again.
    let mut without_token = config;
    if let Some(m) = without_token
        .upstream
        .as_mut()
        .and_then(|u| u.meshid.as_mut())
    {
        m.join_token = None;
    }
    let again = Ca::start(without_token, &down_dir).await;
    let svid = again.workload("east/after-restart").await;
    assert_eq!(svid.chain.len(), 2);
    again.server.shutdown().await.unwrap();
    upstream.server.shutdown().await.unwrap();
}
