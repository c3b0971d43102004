//! `k8s_psat` node attestation end to end, in process: a CA whose clusters
//! are fake API servers (their TokenReview verifies real ES256/RS256
//! service-account JWTs minted here, and serves pods and nodes) or OIDC
//! issuers serving discovery and a JWKS over HTTPS; agents attest over the
//! real node API. No Kubernetes runs here.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::time::Duration;

use meshid_ca::config::{K8sPsatCluster, PsatValidation};
use meshid_tests::kube::{OidcIssuer, SaKeyAlg};
use tonic::Code;

#[path = "k8s_psat/fixture.rs"]
mod fixture;
#[path = "support/server.rs"]
mod server;

use fixture::{AUD, Ca, Cluster, NS, SA, ZONE, backdated, refused};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_attests_and_a_restarted_agent_keeps_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let prod = Cluster::start(dir.path(), "prod").await;
    let ca = Ca::start(vec![("prod", prod.settings())]).await;
    let node_uid = prod.node("node-a", "eu-1a");
    let pod_uid = prod.pod("agent-1", "node-a");
    let token = prod.mint(&prod.claims("agent-1", &pod_uid, Some(("node-a", &node_uid))));

    let agent = ca.attest("prod", &token).await.unwrap();
    let want_id = format!(
        "spiffe://{}/meshid/agent/k8s_psat/prod/{node_uid}",
        server::TD
    );
    assert_eq!(agent.id.as_str(), want_id);
    let mut want = vec![
        "k8s_psat:cluster:prod".to_owned(),
        format!("k8s_psat:agent_ns:{NS}"),
        format!("k8s_psat:agent_sa:{SA}"),
        "k8s_psat:agent_pod_name:agent-1".to_owned(),
        format!("k8s_psat:agent_pod_uid:{pod_uid}"),
        "k8s_psat:agent_node_name:node-a".to_owned(),
        format!("k8s_psat:agent_node_uid:{node_uid}"),
        format!("k8s_psat:agent_node_label:{ZONE}:eu-1a"),
    ];
    want.sort();
    assert_eq!(ca.selectors(&agent).await, want);
    // The CA asked the cluster: one TokenReview for the audience, then the pod and node.
    let verbs: Vec<String> = prod
        .api
        .requests()
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    assert!(
        verbs.iter().any(|r| r.contains("tokenreviews")),
        "{verbs:?}"
    );

    // The same token again is a replay.
    refused(
        ca.attest("prod", &token).await,
        Code::Unauthenticated,
        "token was already used to attest; the kubelet rotates projected tokens, retry with the new one",
    );

    // The agent pod restarts (a new pod on the same node, a fresh token,
    // this one not bound to the node by name): same agent ID.
    prod.api.delete("pods", NS, "agent-1").unwrap();
    let pod2 = prod.pod("agent-2", "node-a");
    let token2 = prod.mint(&prod.claims("agent-2", &pod2, None));
    let again = ca.attest("prod", &token2).await.unwrap();
    assert_eq!(again.id, agent.id);
    assert!(
        ca.selectors(&again)
            .await
            .contains(&"k8s_psat:agent_pod_name:agent-2".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_each_with_its_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let prod = Cluster::start(dir.path(), "prod").await;
    let ca = Ca::start(vec![("prod", prod.settings())]).await;
    let node_a = prod.node("node-a", "eu-1a");
    let node_b = prod.node("node-b", "eu-1b");
    let pod_uid = prod.pod("agent-1", "node-b");
    let on_a = Some(("node-a", node_a.as_str()));
    let on_b = Some(("node-b", node_b.as_str()));

    // Signed by another key (same kid).
    let forged = prod
        .api
        .sa_issuer()
        .mint_forged(&prod.claims("agent-1", &pod_uid, on_b));
    refused(
        ca.attest("prod", &forged).await,
        Code::Unauthenticated,
        "the cluster's TokenReview refused the token: ",
    );
    // Expired an hour ago.
    let expired = backdated(
        prod.claims("agent-1", &pod_uid, on_b),
        Duration::from_secs(7200),
        Duration::from_secs(3600),
    );
    refused(
        ca.attest("prod", &prod.mint(&expired)).await,
        Code::Unauthenticated,
        "token expired at ",
    );
    // For another audience.
    let mut api_aud = prod.claims("agent-1", &pod_uid, on_b);
    api_aud.audiences = vec!["https://kubernetes.default.svc.cluster.local".into()];
    refused(
        ca.attest("prod", &prod.mint(&api_aud)).await,
        Code::Unauthenticated,
        &format!("token is not for audience {AUD}"),
    );
    // Bound to node A, but the pod runs on node B.
    refused(
        ca.attest("prod", &prod.mint(&prod.claims("agent-1", &pod_uid, on_a)))
            .await,
        Code::Unauthenticated,
        "token is bound to node node-a but pod meshid-system/agent-1 runs on node node-b",
    );
    // Bound to a node B that was replaced since (another uid).
    refused(
        ca.attest(
            "prod",
            &prod.mint(&prod.claims("agent-1", &pod_uid, Some(("node-b", "0000-old")))),
        )
        .await,
        Code::Unauthenticated,
        "node node-b was replaced (its uid is",
    );
    // A service account not in the allow-list.
    let mut other_sa = prod.claims("agent-1", &pod_uid, on_b);
    other_sa.service_account = "intruder".into();
    refused(
        ca.attest("prod", &prod.mint(&other_sa)).await,
        Code::Unauthenticated,
        "service account meshid-system:intruder is not in cluster prod's \
         service_account_allow_list [\"meshid-system:meshid-agent\"]",
    );
    // A token bound to no pod.
    let mut unbound = prod.claims("", "", None);
    unbound.pod_name = String::new();
    refused(
        ca.attest("prod", &prod.mint(&unbound)).await,
        Code::Unauthenticated,
        "token is not bound to a pod",
    );
    // An unknown cluster.
    let good = prod.mint(&prod.claims("agent-1", &pod_uid, on_b));
    refused(
        ca.attest("staging", &good).await,
        Code::Unauthenticated,
        "cluster \"staging\" is not configured on this CA; configured: [\"prod\"]",
    );
    // Malformed evidence.
    refused(
        ca.attest_raw(br#"{"cluster": "prod", "token": "x", "extra": 1}"#.to_vec())
            .await,
        Code::InvalidArgument,
        "payload must be the JSON object",
    );
    refused(
        ca.attest("prod", "not-a-jwt").await,
        Code::InvalidArgument,
        "k8s_psat token is not a JWT",
    );
    // The pod is deleted: the cluster no longer authenticates its token.
    prod.api.delete("pods", NS, "agent-1").unwrap();
    refused(
        ca.attest("prod", &good).await,
        Code::Unauthenticated,
        "the cluster's TokenReview refused the token: ",
    );
    // None of the refusals used the good token up: with its pod back (a new
    // uid) the old token is refused as bound to the replaced pod.
    let new_uid = prod.pod("agent-1", "node-b");
    assert_ne!(new_uid, pod_uid);
    refused(
        ca.attest("prod", &good).await,
        Code::Unauthenticated,
        "the cluster's TokenReview refused the token: ",
    );
    let fresh = prod.mint(&prod.claims("agent-1", &new_uid, on_b));
    ca.attest("prod", &fresh).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_attest_to_one_ca() {
    let dir = tempfile::tempdir().unwrap();
    let east = Cluster::start(dir.path(), "east").await;
    let west = Cluster::start(dir.path(), "west").await;
    let ca = Ca::start(vec![("east", east.settings()), ("west", west.settings())]).await;
    let east_node = east.node("node-1", "e");
    let west_node = west.node("node-1", "w");
    let east_pod = east.pod("agent", "node-1");
    let west_pod = west.pod("agent", "node-1");
    let east_token = east.mint(&east.claims("agent", &east_pod, None));
    let west_token = west.mint(&west.claims("agent", &west_pod, None));

    // A token of one cluster named as the other's is refused by that
    // cluster's review.
    refused(
        ca.attest("west", &east_token).await,
        Code::Unauthenticated,
        "the cluster's TokenReview refused the token: ",
    );
    let e = ca.attest("east", &east_token).await.unwrap();
    let w = ca.attest("west", &west_token).await.unwrap();
    assert!(
        e.id.as_str()
            .ends_with(&format!("/k8s_psat/east/{east_node}"))
    );
    assert!(
        w.id.as_str()
            .ends_with(&format!("/k8s_psat/west/{west_node}"))
    );
    assert!(
        ca.selectors(&w)
            .await
            .contains(&"k8s_psat:cluster:west".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_does_not_stop_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let gone = Cluster::start(dir.path(), "gone").await;
    let settings = gone.settings();
    let token = gone.mint(&gone.claims("agent", "uid", None));
    drop(gone);
    let ca = Ca::start(vec![("gone", settings)]).await;
    refused(
        ca.attest("gone", &token).await,
        Code::Unavailable,
        "cluster gone: the TokenReview failed",
    );
}

/// A cluster verified through its issuer's discovery only.
fn oidc_settings(issuer: &OidcIssuer, ca_file: &std::path::Path) -> K8sPsatCluster {
    issuer.write_ca(ca_file);
    K8sPsatCluster {
        validation: PsatValidation::Oidc,
        oidc_issuer: Some(issuer.url()),
        oidc_ca_file: Some(ca_file.to_owned()),
        ..K8sPsatCluster::token_review(&[&format!("{NS}:{SA}")])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_clusters_verify_es256_and_rs256_tokens_against_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let es = OidcIssuer::start(SaKeyAlg::Es256).await;
    let rs = OidcIssuer::start(SaKeyAlg::Rs256).await;
    // A third cluster verifies by OIDC but reads pods and nodes from its API.
    let api = Cluster::start(dir.path(), "api").await;
    let api_issuer = OidcIssuer::start(SaKeyAlg::Es256).await;
    let ca = Ca::start(vec![
        ("es", oidc_settings(&es, &dir.path().join("es.pem"))),
        ("rs", oidc_settings(&rs, &dir.path().join("rs.pem"))),
        (
            "api",
            K8sPsatCluster {
                kubeconfig: Some(api.kubeconfig.clone()),
                allowed_node_label_keys: vec![ZONE.into()],
                ..oidc_settings(&api_issuer, &dir.path().join("api.pem"))
            },
        ),
    ])
    .await;

    for (name, issuer) in [("es", &es), ("rs", &rs)] {
        let mut claims = meshid_tests::kube::SaClaims::bound(
            NS,
            SA,
            "agent",
            "pod-uid-1",
            Some(("node-1", "node-uid-1")),
            AUD,
            fixture::TTL,
        );
        claims.issuer = issuer.url();
        let agent = ca
            .attest(name, &issuer.issuer().mint(&claims))
            .await
            .unwrap();
        assert!(
            agent
                .id
                .as_str()
                .ends_with(&format!("/k8s_psat/{name}/node-uid-1")),
            "{}",
            agent.id
        );
        assert!(
            ca.selectors(&agent)
                .await
                .contains(&"k8s_psat:agent_node_name:node-1".to_owned())
        );
        // Forged: same kid, another key.
        let mut other = claims.clone();
        other.jti = "another".into();
        refused(
            ca.attest(name, &issuer.issuer().mint_forged(&other)).await,
            Code::Unauthenticated,
            "token signature does not verify against the issuer's keys",
        );
        // Another issuer's token.
        let mut foreign = other.clone();
        foreign.issuer = "https://elsewhere.example".into();
        refused(
            ca.attest(name, &issuer.issuer().mint(&foreign)).await,
            Code::Unauthenticated,
            &format!(
                "token is issued by \"https://elsewhere.example\", not by cluster {name}'s issuer"
            ),
        );
        // Without node claims and no API to read: refused.
        let mut nodeless = other.clone();
        nodeless.node_name = None;
        nodeless.node_uid = None;
        refused(
            ca.attest(name, &issuer.issuer().mint(&nodeless)).await,
            Code::Unauthenticated,
            "token names no node",
        );
    }
    // RS256 and ES256 keys were each fetched once for all of the above.
    assert_eq!(es.jwks_fetches(), 1);

    // A rotated key (unknown kid) is fetched at once.
    let rotated = es.rotate();
    let mut claims = meshid_tests::kube::SaClaims::bound(
        NS,
        SA,
        "agent",
        "pod-uid-2",
        Some(("node-1", "node-uid-1")),
        AUD,
        fixture::TTL,
    );
    claims.issuer = es.url();
    let again = ca.attest("es", &rotated.mint(&claims)).await.unwrap();
    assert!(again.id.as_str().ends_with("/k8s_psat/es/node-uid-1"));
    assert_eq!(es.jwks_fetches(), 2);

    // OIDC with API reads: the pod must exist (deleted → its own error).
    let node_uid = api.node("node-9", "z9");
    let pod_uid = api.pod("agent", "node-9");
    let mut claims = api.claims("agent", &pod_uid, Some(("node-9", &node_uid)));
    claims.issuer = api_issuer.url();
    let token = api_issuer.issuer().mint(&claims);
    api.api.delete("pods", NS, "agent").unwrap();
    refused(
        ca.attest("api", &token).await,
        Code::Unauthenticated,
        "pod meshid-system/agent no longer exists",
    );
    let pod_uid = api.pod("agent", "node-9");
    refused(
        ca.attest("api", &token).await,
        Code::Unauthenticated,
        "pod meshid-system/agent was replaced (its uid is",
    );
    let mut claims = api.claims("agent", &pod_uid, Some(("node-9", &node_uid)));
    claims.issuer = api_issuer.url();
    let agent = ca
        .attest("api", &api_issuer.issuer().mint(&claims))
        .await
        .unwrap();
    assert!(
        ca.selectors(&agent)
            .await
            .contains(&format!("k8s_psat:agent_node_label:{ZONE}:z9"))
    );
}
