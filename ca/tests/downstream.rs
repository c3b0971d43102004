//! A meshid CA below another meshid CA of the same trust domain: the
//! downstream attests with a join token, its intermediate is signed by the
//! upstream under a `downstream` entry, its SVIDs chain to the upstream's
//! root (openssl verify -x509_strict), workloads of both CAs accept each
//! other in mTLS, and it renews its intermediate without a restart, also
//! across an upstream outage. The refusals name what to do.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use meshid_ca::config::{CaConfig, DownstreamConfig};
use meshid_ca::upstream::meshid::{AGENT_CERT_FILE, AGENT_KEY_FILE};
use meshid_identity::jwt::validate;
use meshid_identity::{BundleSet, SpiffeId};
use meshid_tests::eventually_async;

#[path = "downstream/refusals.rs"]
mod refusals;
#[path = "support/server.rs"]
mod server;
#[path = "downstream/setup.rs"]
mod setup;

use setup::{Ca, Pair, mtls, openssl_verify};

/// How long a renewal may take to show.
const RENEWAL: Duration = Duration::from_secs(20);

/// `cfg` signing downstream intermediates for `ttl`.
fn downstream_ttl(cfg: CaConfig, ttl: Duration) -> CaConfig {
    CaConfig {
        downstream: DownstreamConfig { ca_ttl: ttl },
        ..cfg
    }
}

#[tokio::test]
async fn svids_of_a_downstream_chain_to_the_upstream_root_and_workloads_of_both_verify_each_other()
{
    let p = Pair::start(|c| c).await;
    let (upstream, downstream) = (&p.upstream, &p.downstream);
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
    let root = p.root_file();
    openssl_verify(p.dir.path(), &root, &east.chain);
    openssl_verify(p.dir.path(), &root, &west.chain);

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
    p.downstream.server.shutdown().await.unwrap();
    p.upstream.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn jwt_svids_of_each_ca_verify_against_the_other_cas_bundle() {
    let p = Pair::start(|c| c).await;
    let (upstream, downstream) = (&p.upstream, &p.downstream);
    let jwt = |ca: &Ca, id: &str, audience: &str| {
        let id: SpiffeId = id.parse().unwrap();
        let aud = [audience.to_owned()];
        let now = SystemTime::now();
        let authority = ca.server.authority.load();
        authority
            .mint_jwt_svid(&id, &aud, Duration::ZERO, Duration::ZERO, now)
            .unwrap()
            .0
    };
    let trusting = |ca: &Ca| -> BundleSet { [ca.bundle()].into_iter().collect() };
    let from_west = jwt(upstream, "spiffe://example.org/west/api", "east");
    let claims = validate(&from_west, "east", &trusting(downstream), SystemTime::now()).unwrap();
    assert_eq!(claims.spiffe_id.as_str(), "spiffe://example.org/west/api");
    // The downstream handed the upstream its JWT key with SignDownstreamCa.
    let from_east = jwt(downstream, "spiffe://example.org/east/api", "west");
    let claims = validate(&from_east, "west", &trusting(upstream), SystemTime::now()).unwrap();
    assert_eq!(claims.spiffe_id.as_str(), "spiffe://example.org/east/api");
    assert!(validate(&from_east, "west", &trusting(downstream), SystemTime::now()).is_ok());
    assert!(validate(&from_east, "east", &trusting(upstream), SystemTime::now()).is_err());
    p.downstream.server.shutdown().await.unwrap();
    p.upstream.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_downstream_renews_its_intermediate_without_a_restart() {
    let p = Pair::start(|c| downstream_ttl(c, Duration::from_secs(4))).await;
    let first = p.intermediate();
    let renewed = eventually_async("a renewed intermediate", RENEWAL, || async {
        let now = p.intermediate();
        (now != first).then_some(now)
    })
    .await;
    let svid = p.downstream.workload("east/after-renewal").await;
    assert_eq!(
        svid.chain[1], renewed,
        "new SVIDs chain to the new intermediate"
    );
    openssl_verify(p.dir.path(), &p.root_file(), &svid.chain);
    p.downstream.server.shutdown().await.unwrap();
    p.upstream.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn while_the_upstream_is_down_the_downstream_keeps_signing_and_renews_once_it_is_back() {
    let port = meshid_tests::free_port();
    let p = Pair::start(|c| CaConfig {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        ..downstream_ttl(c, Duration::from_secs(8))
    })
    .await;
    let first = p.intermediate();
    p.upstream.server.shutdown().await.unwrap();

    let metrics = p.downstream.server.metrics.clone();
    eventually_async(
        "a failed renewal while the upstream is down",
        RENEWAL,
        || async {
            let text = metrics.encode();
            text.contains("meshid_ca_upstream_renewals_total{result=\"failed\"}")
                .then_some(())
        },
    )
    .await;
    let svid = p.downstream.workload("east/during-outage").await;
    assert_eq!(svid.chain[1], first, "still signing with the current one");

    let up_dir = p.dir.path().join("upstream");
    let upstream = Ca::start(p.upstream_config.clone(), &up_dir).await;
    let current = || p.downstream.server.authority.load().cert_chain()[0].clone();
    // The renewal is counted once it has been taken, just after it signs.
    let renewed = eventually_async("a renewal once the upstream is back", RENEWAL, || async {
        let now = current();
        let counted = metrics
            .encode()
            .contains("meshid_ca_upstream_renewals_total{result=\"applied\"} 1");
        (now != first && counted).then_some(now)
    })
    .await;
    let svid = p.downstream.workload("east/after-outage").await;
    assert_eq!(svid.chain[1], renewed);
    p.downstream.server.shutdown().await.unwrap();
    upstream.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_downstream_renews_its_agent_svid_and_restarts_without_a_token() {
    let p = Pair::start(|c| CaConfig {
        agent_ttl: Duration::from_secs(8),
        ..downstream_ttl(c, Duration::from_secs(4))
    })
    .await;
    let down_dir = p.dir.path().join("downstream");
    let agent_file = down_dir.join(AGENT_CERT_FILE);
    let first = std::fs::read(&agent_file).unwrap();
    eventually_async("a renewed agent SVID for the upstream", RENEWAL, || async {
        (std::fs::read(&agent_file).unwrap() != first).then_some(())
    })
    .await;
    let key = std::fs::metadata(down_dir.join(AGENT_KEY_FILE)).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(&key.permissions());
    assert_eq!(mode & 0o777, 0o600, "the agent key is private");
    p.downstream.server.shutdown().await.unwrap();

    // The token was used once; the stored agent SVID is enough to start again.
    let mut without_token = p.downstream_config.clone();
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
    p.upstream.server.shutdown().await.unwrap();
}
