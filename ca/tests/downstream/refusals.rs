//! What the upstream refuses, and the shape of what it signs.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use meshid_ca::config::{CaConfig, UpstreamConfig};
use meshid_ca::server::CaServer;
use meshid_ca::store::NewEntry;
use meshid_identity::{PrivateKey, Selector};
use meshid_proto::ca::{JwtKey, SignDownstreamCaRequest};
use meshid_tests::{Alg, ClientSvid, Pki, node_client};
use tonic::Code;
use x509_parser::extensions::GeneralName;

use super::server::{self, TD};
use super::setup::{ALIAS, Ca, Svid, downstream_config, openssl_verify};

/// A CA that may have one CA below it.
const PATHLEN_1: &str =
    "basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign";

/// A CSR for `key`; with `ca`, it asks for a CA (as `meshid ca csr` does).
fn csr(key: &PrivateKey, ca: bool) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mesh east");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "evil corp");
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    let kp = key.key_pair().unwrap();
    params.serialize_request(&kp).unwrap().der().to_vec()
}

async fn sign(ca: &Ca, agent: &Svid, csr: Vec<u8>) -> Result<Vec<Vec<u8>>, tonic::Status> {
    sign_publishing(ca, agent, csr, None).await
}

/// `SignDownstreamCa` that also hands the upstream the JWT key `jwt`.
async fn sign_publishing(
    ca: &Ca,
    agent: &Svid,
    csr: Vec<u8>,
    jwt_authority: Option<JwtKey>,
) -> Result<Vec<Vec<u8>>, tonic::Status> {
    let creds = ClientSvid {
        chain: &agent.chain,
        key: &agent.key,
    };
    let mut c = node_client(ca.server.node_addr, &ca.bundle(), Some(creds)).await;
    c.sign_downstream_ca(SignDownstreamCaRequest { csr, jwt_authority })
        .await
        .map(|r| r.into_inner().ca_cert_chain)
}

async fn start_err(cfg: CaConfig) -> String {
    match CaServer::start(cfg.validate().unwrap()).await {
        Ok(_) => panic!("the downstream CA started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn without_a_matching_downstream_entry_or_with_a_wrong_token_a_downstream_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let up_dir = dir.path().join("upstream");
    let upstream = Ca::start(server::config(&up_dir), &up_dir).await;
    let (token, _) = upstream.token(Some(ALIAS)).await;
    let err = start_err(downstream_config(&upstream, &token, &dir.path().join("d1"))).await;
    assert!(err.contains("may not run a downstream CA"), "{err}");
    assert!(err.contains("--downstream"), "{err}");

    // An entry for the alias whose selectors this agent does not have.
    let mut e = NewEntry::new(
        format!("spiffe://{TD}/downstream/other").parse().unwrap(),
        ALIAS.parse().unwrap(),
        vec![Selector::parse("join_token:id:0123456789abcdef").unwrap()],
    );
    e.downstream = true;
    upstream.server.store.create_entry(e).await.unwrap();
    let (token, _) = upstream.token(Some(ALIAS)).await;
    let err = start_err(downstream_config(&upstream, &token, &dir.path().join("d2"))).await;
    assert!(err.contains("--downstream"), "{err}");

    upstream.downstream_entry().await;
    let wrong = "0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let err = start_err(downstream_config(&upstream, wrong, &dir.path().join("d3"))).await;
    assert!(err.contains("unknown join token"), "{err}");
    upstream.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_upstream_signs_only_ca_requests_and_takes_only_their_key_and_common_name() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Ca::start(server::config(dir.path()), dir.path()).await;
    let (token, _) = upstream.token(Some(ALIAS)).await;
    let agent = upstream.agent(&token).await;
    let key = PrivateKey::generate_p256().unwrap();

    let denied = sign(&upstream, &agent, csr(&key, true)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().contains("--downstream"),
        "{}",
        denied.message()
    );

    upstream.downstream_entry().await;
    let leaf = sign(&upstream, &agent, csr(&key, false)).await.unwrap_err();
    assert_eq!(leaf.code(), Code::InvalidArgument);
    assert!(
        leaf.message().contains("does not request a CA"),
        "{}",
        leaf.message()
    );
    let mut altered = csr(&key, true);
    let last = altered.len() - 1;
    altered[last] ^= 1;
    let bad = sign(&upstream, &agent, altered).await.unwrap_err();
    assert!(bad.message().contains("signature"), "{}", bad.message());
    let big = sign(&upstream, &agent, vec![0x30; 9000]).await.unwrap_err();
    assert!(big.message().contains("limit"), "{}", big.message());

    let before = SystemTime::now();
    let chain = sign(&upstream, &agent, csr(&key, true)).await.unwrap();
    assert_eq!(chain.len(), 1, "a self-signed upstream adds no chain");
    let (_, cert) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(cert.public_key().raw, key.public_key_der().as_slice());
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, Some(0));
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    let usage = ku.value;
    assert!(usage.key_cert_sign() && usage.crl_sign() && !usage.digital_signature());
    let sans: Vec<_> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .clone();
    assert_eq!(sans, vec![GeneralName::URI("spiffe://example.org")]);
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["mesh east"]);
    assert!(
        !cert.subject().to_string().contains("evil"),
        "{}",
        cert.subject()
    );
    let not_after = cert.validity().not_after.timestamp();
    let ttl = meshid_ca::node::DEFAULT_DOWNSTREAM_CA_TTL + Duration::from_secs(5);
    let limit = (before + ttl)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    assert!(not_after <= i64::try_from(limit.as_secs()).unwrap());
    upstream.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_upstream_whose_chain_leaves_no_pathlen_room_refuses_and_one_on_pathlen_1_signs() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.root("root", Alg::P256);
    pki.mesh_ca("leaves-only", "root", Alg::P256, "");
    pki.ca("nesting", "root", Alg::P256, PATHLEN_1);
    let on = |name: &str, data: &str| CaConfig {
        upstream: Some(UpstreamConfig {
            root_file: Some(pki.cert("root")),
            ..UpstreamConfig::files(pki.cert(name), pki.key(name))
        }),
        ..server::config(&dir.path().join(data))
    };

    let strict = Ca::start(on("leaves-only", "strict"), &dir.path().join("strict")).await;
    strict.downstream_entry().await;
    let (token, _) = strict.token(Some(ALIAS)).await;
    let agent = strict.agent(&token).await;
    let key = PrivateKey::generate_p256().unwrap();
    let refused = sign(&strict, &agent, csr(&key, true)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("pathLenConstraint 0"),
        "{}",
        refused.message()
    );
    assert!(
        refused.message().contains("pathlen:1"),
        "{}",
        refused.message()
    );
    strict.server.shutdown().await.unwrap();

    // A CA above this one whose pathLen leaves no room for one more.
    pki.ca("policy", "root", Alg::P256, PATHLEN_1);
    pki.ca("mesh", "policy", Alg::P256, PATHLEN_1);
    let chain = pki.bundle("mesh-chain.pem", &["mesh", "policy"]);
    let below_policy = CaConfig {
        upstream: Some(UpstreamConfig {
            root_file: Some(pki.cert("root")),
            ..UpstreamConfig::files(chain, pki.key("mesh"))
        }),
        ..server::config(&dir.path().join("below-policy"))
    };
    let ca = Ca::start(below_policy, &dir.path().join("below-policy")).await;
    ca.downstream_entry().await;
    let (token, _) = ca.token(Some(ALIAS)).await;
    let agent = ca.agent(&token).await;
    let refused = sign(&ca, &agent, csr(&key, true)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("1 above"),
        "{}",
        refused.message()
    );
    ca.server.shutdown().await.unwrap();

    let up_dir = dir.path().join("nesting-ca");
    let upstream = Ca::start(on("nesting", "nesting-ca"), &up_dir).await;
    upstream.downstream_entry().await;
    let (token, _) = upstream.token(Some(ALIAS)).await;
    let down_dir = dir.path().join("downstream");
    let downstream = Ca::start(downstream_config(&upstream, &token, &down_dir), &down_dir).await;
    let svid = downstream.workload("east/api").await;
    // leaf -> downstream intermediate -> the enterprise intermediate.
    assert_eq!(svid.chain.len(), 3);
    openssl_verify(dir.path(), &pki.cert("root"), &svid.chain);
    downstream.server.shutdown().await.unwrap();
    upstream.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_jwt_key_is_published_only_for_a_downstream_entry_only_when_usable_and_survives_a_restart()
 {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Ca::start(server::config(dir.path()), dir.path()).await;
    let (token, _) = upstream.token(Some(ALIAS)).await;
    let agent = upstream.agent(&token).await;
    let ca_key = PrivateKey::generate_p256().unwrap();
    let jwt = |key_id: &str, public_key: Vec<u8>| JwtKey {
        key_id: key_id.into(),
        public_key,
        expires_at: 0,
    };
    let good_key = PrivateKey::generate_p256().unwrap().public_key_der();
    // A key's ID is the first 16 hex digits of SHA-256 of its public key.
    let good_id = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&good_key)[..8]);
    let good = jwt(&good_id, good_key);
    let publish = |k: JwtKey| sign_publishing(&upstream, &agent, csr(&ca_key, true), Some(k));

    let denied = publish(good.clone()).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    upstream.downstream_entry().await;
    for (bad, why) in [
        (
            jwt("east-1", vec![0x30, 0x03, 1, 2, 3]),
            "invalid public key",
        ),
        (jwt("east-1", vec![0x30; 3000]), "larger than 2048"),
        (jwt("", good.public_key.clone()), "key ID"),
        (jwt("a b", good.public_key.clone()), "key ID"),
        // Another key's ID (one downstream taking over another's) or any
        // name but the key's digest.
        (
            jwt("east-1", good.public_key.clone()),
            "is not its key's ID",
        ),
    ] {
        let refused = publish(bad).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains(why), "{}", refused.message());
    }
    assert_eq!(
        upstream.bundle().jwt_authorities.len(),
        1,
        "only its own key"
    );

    let sequence = upstream.bundle().sequence;
    let chain = publish(good.clone()).await.unwrap();
    let bundle = upstream.bundle();
    assert!(bundle.sequence > sequence);
    let published = bundle.jwt_authority(&good_id).unwrap();
    assert_eq!(published.public_key_der, good.public_key);
    let (_, cert) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let not_after = SystemTime::UNIX_EPOCH
        + Duration::from_secs(u64::try_from(cert.validity().not_after.timestamp()).unwrap());
    let expires_at = published.expires_at.unwrap();
    assert!(
        expires_at >= not_after && expires_at < not_after + Duration::from_secs(1),
        "until the intermediate expires"
    );

    upstream.server.shutdown().await.unwrap();
    let again = Ca::start(server::config(dir.path()), dir.path()).await;
    assert!(
        again.bundle().jwt_authority(&good_id).is_some(),
        "kept across a restart"
    );
    again.server.shutdown().await.unwrap();
}
