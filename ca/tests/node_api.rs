//! The node API end to end: an in-process CA on 127.0.0.1:0 with SQLite in
//! a temp dir, and a test agent speaking real gRPC over rustls.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use meshid_ca::config::CaConfig;
use meshid_ca::node_attestor::join_token;
use meshid_ca::server::CaServer;
use meshid_ca::store::NewEntry;
use meshid_identity::{
    BundleSet, PrivateKey, Selector, SpiffeId, TrustBundle, TrustDomain, verify_x509_svid,
};
use meshid_proto::ca::node_client::NodeClient;
use meshid_proto::ca::{
    AttestRequest, JwtSvidRequest, MintJwtSvidsRequest, RenewAgentRequest, SignX509SvidsRequest,
    SvidRequest, SyncRequest, jwt_svid_result, svid_result,
};
use meshid_tests::node::{ca_channel, csr};
use meshid_tests::{ClientSvid, node_client};
use rustls::pki_types::CertificateDer;
use tonic::Code;
use tonic::transport::Channel;
use x509_parser::extensions::GeneralName;

#[path = "node_api/agent_binding.rs"]
mod agent_binding;
#[path = "support/server.rs"]
mod server;

use server::{Agent, TD};

struct Ca {
    server: CaServer,
    dir: tempfile::TempDir,
}

async fn start_in(dir: tempfile::TempDir) -> Ca {
    let server = server::start(server::config(dir.path())).await;
    Ca { server, dir }
}

async fn start() -> Ca {
    start_in(tempfile::tempdir().unwrap()).await
}

fn bundle(ca: &Ca) -> TrustBundle {
    ca.server.authority.bundle().as_ref().clone()
}

/// A CSR asking for things it must not get: SANs and CA:true.
fn greedy_csr(key: &PrivateKey) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::URI(
        "spiffe://evil.org/admin".try_into().unwrap(),
    ));
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .serialize_request(&key.key_pair().unwrap())
        .unwrap()
        .der()
        .to_vec()
}

/// An OpenSSL-made CSR asking for CA:true and foreign SANs.
fn openssl_csr(dir: &std::path::Path) -> Vec<u8> {
    let out = dir.join("openssl.csr");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(dir.join("openssl.key"))
        .arg("-out")
        .arg(&out)
        .args([
            "-outform",
            "DER",
            "-subj",
            "/CN=evil",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ])
        .args([
            "-addext",
            "subjectAltName=URI:spiffe://evil.org/x,DNS:evil.example",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

async fn new_token(ca: &Ca, alias: Option<SpiffeId>) -> (String, SpiffeId) {
    let (token, rec) = join_token::generate(SystemTime::now(), Duration::from_secs(600), alias);
    ca.server.store.create_join_token(&rec).await.unwrap();
    let id = join_token::agent_id(&TD.parse().unwrap(), &rec.id).unwrap();
    (token, id)
}

async fn attest(ca: &Ca, token: &str) -> Result<Agent, tonic::Status> {
    let key = PrivateKey::generate_p256().unwrap();
    let mut c = node_client(ca.server.node_addr, &bundle(ca), None).await;
    let resp = c
        .attest(AttestRequest {
            attestation_type: "join_token".into(),
            payload: token.as_bytes().to_vec(),
            csr: csr(&key),
        })
        .await?
        .into_inner();
    Ok(Agent::from_svid(key, resp.svid.unwrap()))
}

async fn agent_client(ca: &Ca, agent: &Agent) -> NodeClient<Channel> {
    node_client(ca.server.node_addr, &bundle(ca), Some(agent.svid())).await
}

async fn entry(ca: &Ca, id: &str, parent: &SpiffeId, dns: &[&str]) -> String {
    let mut e = NewEntry::new(
        format!("spiffe://{TD}/{id}").parse().unwrap(),
        parent.clone(),
        vec![Selector::parse("unix:uid:1000").unwrap()],
    );
    e.dns_names = dns.iter().map(|s| s.to_string()).collect();
    ca.server.store.create_entry(e).await.unwrap().id
}

fn item(entry_id: &str, csr: Vec<u8>) -> SvidRequest {
    SvidRequest {
        entry_id: entry_id.into(),
        csr,
        ttl_seconds: 0,
    }
}

fn error_code(r: &meshid_proto::ca::SvidResult) -> Option<Code> {
    match r.result.as_ref().unwrap() {
        svid_result::Result::Error(e) => Some(Code::from(e.code)),
        svid_result::Result::Svid(_) => None,
    }
}

#[tokio::test]
async fn agent_attests_syncs_and_gets_svids_shaped_by_its_entries() {
    let ca = start().await;
    let alias: SpiffeId = format!("spiffe://{TD}/cluster/node-pool").parse().unwrap();
    let (token, expected_id) = new_token(&ca, Some(alias.clone())).await;
    let agent = attest(&ca, &token).await.unwrap();
    assert_eq!(agent.id, expected_id);
    let bundles: BundleSet = [bundle(&ca)].into_iter().collect();
    let v = verify_x509_svid(&agent.chain, &bundles, SystemTime::now()).unwrap();
    assert_eq!(v.spiffe_id, expected_id);
    let stored = ca.server.store.get_agent(&agent.id).await.unwrap().unwrap();
    assert_eq!(stored.serial.len(), 32);

    let direct = entry(&ca, "web", &agent.id, &["web.example.org"]).await;
    let via_alias = entry(&ca, "db", &alias, &[]).await;
    let other_parent: SpiffeId = format!("spiffe://{TD}/other-agent").parse().unwrap();
    let _not_mine = entry(&ca, "secret", &other_parent, &[]).await;
    // A Kubernetes controller's entry: agents see its owner too.
    let mut pod = NewEntry::new(
        format!("spiffe://{TD}/pod").parse().unwrap(),
        alias.clone(),
        vec![Selector::parse("unix:uid:1001").unwrap()],
    );
    pod.owner = "k8s/demo".into();
    let pod = ca.server.store.create_entry(pod).await.unwrap().id;

    let mut c = agent_client(&ca, &agent).await;
    let sync = c.sync(SyncRequest::default()).await.unwrap().into_inner();
    let mut ids: Vec<_> = sync.entries.iter().map(|e| e.id.clone()).collect();
    ids.sort();
    let mut want = vec![direct.clone(), via_alias.clone(), pod.clone()];
    want.sort();
    assert_eq!(ids, want);
    for e in &sync.entries {
        let owner = if e.id == pod { "k8s/demo" } else { "" };
        assert_eq!(e.owner, owner, "{}", e.spiffe_id);
    }
    assert_eq!(sync.bundle.unwrap().trust_domain, TD);
    assert!(sync.next_page_token.is_empty());

    let before = ca.server.store.count_issuances().await.unwrap();
    let k1 = PrivateKey::generate_p256().unwrap();
    let batch = vec![
        item(&direct, greedy_csr(&k1)),
        item(&via_alias, openssl_csr(ca.dir.path())),
        item(&direct, csr(&PrivateKey::generate_p256().unwrap())),
    ];
    let resp = c
        .sign_x509_svids(SignX509SvidsRequest { requests: batch })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.results.len(), 3);
    let after = ca.server.store.count_issuances().await.unwrap();
    assert_eq!(after - before, 3);
    for (r, (want_id, want_dns)) in resp.results.iter().zip([
        ("web", vec!["web.example.org"]),
        ("db", vec![]),
        ("web", vec!["web.example.org"]),
    ]) {
        let svid_result::Result::Svid(svid) = r.result.as_ref().unwrap() else {
            panic!("expected an SVID, got {r:?}")
        };
        let chain: Vec<CertificateDer<'_>> = svid
            .cert_chain
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let v = verify_x509_svid(&chain, &bundles, SystemTime::now()).unwrap();
        assert_eq!(v.spiffe_id.to_string(), format!("spiffe://{TD}/{want_id}"));
        let (_, cert) = x509_parser::parse_x509_certificate(&svid.cert_chain[0]).unwrap();
        assert!(!cert.is_ca(), "CSR asked for CA:true and must not get it");
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        let dns: Vec<&str> = san
            .general_names
            .iter()
            .filter_map(|g| match g {
                GeneralName::DNSName(d) => Some(*d),
                _ => None,
            })
            .collect();
        let uris: Vec<&str> = san
            .general_names
            .iter()
            .filter_map(|g| match g {
                GeneralName::URI(u) => Some(*u),
                _ => None,
            })
            .collect();
        assert_eq!(dns, want_dns);
        assert_eq!(uris, vec![format!("spiffe://{TD}/{want_id}").as_str()]);
        let lifetime =
            cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert!(
            lifetime <= 3600 + 10,
            "default max TTL is 1h (+10s backdate), got {lifetime}"
        );
    }

    // JWT-SVIDs validate against the published bundle.
    let jwt = c
        .mint_jwt_svids(MintJwtSvidsRequest {
            requests: vec![
                JwtSvidRequest {
                    entry_id: direct.clone(),
                    audience: vec!["payments".into()],
                    ttl_seconds: 60,
                },
                JwtSvidRequest {
                    entry_id: direct.clone(),
                    audience: vec![],
                    ttl_seconds: 60,
                },
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let jwt_svid_result::Result::Svid(tok) = jwt.results[0].result.as_ref().unwrap() else {
        panic!()
    };
    let claims =
        meshid_identity::jwt::validate(&tok.token, "payments", &bundles, SystemTime::now())
            .unwrap();
    assert_eq!(claims.spiffe_id.to_string(), format!("spiffe://{TD}/web"));
    let jwt_svid_result::Result::Error(e) = jwt.results[1].result.as_ref().unwrap() else {
        panic!()
    };
    assert_eq!(Code::from(e.code), Code::InvalidArgument);

    // RenewAgent re-signs for a new key and records the new serial.
    let new_key = PrivateKey::generate_p256().unwrap();
    let renewed = c
        .renew_agent(RenewAgentRequest { csr: csr(&new_key) })
        .await
        .unwrap()
        .into_inner();
    let svid = renewed.svid.unwrap();
    assert_eq!(svid.spiffe_id, agent.id.to_string());
    let (_, cert) = x509_parser::parse_x509_certificate(&svid.cert_chain[0]).unwrap();
    let serial = hex_serial(cert.tbs_certificate.raw_serial());
    assert_eq!(
        ca.server
            .store
            .get_agent(&agent.id)
            .await
            .unwrap()
            .unwrap()
            .serial,
        serial
    );

    let metrics = ca.server.metrics.encode();
    assert!(
        metrics.contains("meshid_ca_signatures_total{kind=\"x509\",result=\"ok\"} 3"),
        "{metrics}"
    );
    ca.server.shutdown().await.unwrap();
}

fn hex_serial(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn bad_batch_items_fail_alone_with_precise_codes() {
    let ca = start().await;
    let (token, _) = new_token(&ca, None).await;
    let agent = attest(&ca, &token).await.unwrap();
    let mine = entry(&ca, "web", &agent.id, &[]).await;
    let other: SpiffeId = format!("spiffe://{TD}/another-agent").parse().unwrap();
    let not_mine = entry(&ca, "secret", &other, &[]).await;
    let good = csr(&PrivateKey::generate_p256().unwrap());
    let mut tampered = good.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;

    let mut c = agent_client(&ca, &agent).await;
    let before = ca.server.store.count_issuances().await.unwrap();
    let resp = c
        .sign_x509_svids(SignX509SvidsRequest {
            requests: vec![
                item(&mine, b"not a csr".to_vec()),
                item(&mine, vec![0x30; 9000]),
                item(&mine, tampered),
                item(&not_mine, good.clone()),
                item("00000000000000000000000000000000", good.clone()),
                item("", good.clone()),
                item(&"a".repeat(65), good.clone()),
                item(&mine, good.clone()),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let codes: Vec<_> = resp.results.iter().map(error_code).collect();
    assert_eq!(
        codes,
        vec![
            Some(Code::InvalidArgument),
            Some(Code::InvalidArgument),
            Some(Code::InvalidArgument),
            Some(Code::PermissionDenied),
            Some(Code::PermissionDenied),
            Some(Code::PermissionDenied),
            Some(Code::PermissionDenied),
            None,
        ]
    );
    assert_eq!(ca.server.store.count_issuances().await.unwrap() - before, 1);

    // More than 1000 CSRs: the whole call is refused, nothing signed.
    let many = (0..1001).map(|_| item(&mine, good.clone())).collect();
    let err = c
        .sign_x509_svids(SignX509SvidsRequest { requests: many })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    // A message over the 4 MiB limit is refused before it is decoded.
    let huge = vec![item(&mine, vec![0u8; 5 * 1024 * 1024])];
    let err = c
        .sign_x509_svids(SignX509SvidsRequest { requests: huge })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err}");
    assert_eq!(ca.server.store.count_issuances().await.unwrap() - before, 1);
    ca.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn join_tokens_are_single_use_and_checked() {
    let ca = start().await;
    let (token, _) = new_token(&ca, None).await;
    attest(&ca, &token).await.unwrap();
    let reused = attest(&ca, &token).await.unwrap_err();
    assert_eq!(reused.code(), Code::Unauthenticated, "{reused}");
    assert!(reused.message().contains("already used"));

    let (unknown, _) = join_token::generate(SystemTime::now(), Duration::from_secs(60), None);
    assert_eq!(
        attest(&ca, &unknown).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    let long_ago = SystemTime::now() - Duration::from_secs(7200);
    let (expired, rec) = join_token::generate(long_ago, Duration::from_secs(60), None);
    ca.server.store.create_join_token(&rec).await.unwrap();
    let err = attest(&ca, &expired).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("expired"), "{err}");

    assert_eq!(
        attest(&ca, "garbage").await.unwrap_err().code(),
        Code::InvalidArgument
    );

    // A malformed CSR does not burn the token.
    let (token, _) = new_token(&ca, None).await;
    let mut c = node_client(ca.server.node_addr, &bundle(&ca), None).await;
    let err = c
        .attest(AttestRequest {
            attestation_type: "join_token".into(),
            payload: token.clone().into_bytes(),
            csr: b"junk".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    attest(&ca, &token).await.unwrap();
    let err = c
        .attest(AttestRequest {
            attestation_type: "aws_iid".into(),
            payload: vec![],
            csr: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    ca.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn banned_evicted_and_certless_callers_are_refused() {
    let ca = start().await;
    let (t1, _) = new_token(&ca, None).await;
    let (t2, _) = new_token(&ca, None).await;
    let banned = attest(&ca, &t1).await.unwrap();
    let evicted = attest(&ca, &t2).await.unwrap();
    let mut cb = agent_client(&ca, &banned).await;
    let mut ce = agent_client(&ca, &evicted).await;
    cb.sync(SyncRequest::default()).await.unwrap();
    ce.sync(SyncRequest::default()).await.unwrap();

    ca.server
        .store
        .set_agent_banned(&banned.id, true)
        .await
        .unwrap();
    ca.server.store.delete_agent(&evicted.id).await.unwrap();
    let csr_bytes = csr(&PrivateKey::generate_p256().unwrap());
    assert_eq!(
        cb.sync(SyncRequest::default()).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(
        cb.renew_agent(RenewAgentRequest {
            csr: csr_bytes.clone()
        })
        .await
        .unwrap_err()
        .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        cb.sign_x509_svids(SignX509SvidsRequest { requests: vec![] })
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        ce.sync(SyncRequest::default()).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(
        ce.renew_agent(RenewAgentRequest { csr: csr_bytes })
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        ce.mint_jwt_svids(MintJwtSvidsRequest { requests: vec![] })
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let mut anon = node_client(ca.server.node_addr, &bundle(&ca), None).await;
    assert_eq!(
        anon.sync(SyncRequest::default()).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    ca.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn restart_keeps_the_root_and_the_ops_endpoint_answers() {
    let ca = start().await;
    let root = bundle(&ca).x509_authorities.clone();
    let jwt = bundle(&ca).jwt_authorities.clone();
    let ops = ca.server.ops_addr;
    let body = http_get(ops, "/readyz").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let body = http_get(ops, "/metrics").await;
    assert!(
        body.contains("meshid_ca_cert_expiry_timestamp_seconds"),
        "{body}"
    );
    assert!(body.contains("meshid_ca_agents 0"), "{body}");

    let Ca { server, dir } = ca;
    server.shutdown().await.unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("x509-ca.key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let again = start_in(dir).await;
    assert_eq!(bundle(&again).x509_authorities, root);
    assert_eq!(bundle(&again).jwt_authorities, jwt);
    let stored = again
        .server
        .store
        .get_bundle(&TD.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.sequence, 1, "an unchanged bundle keeps its sequence");
    again.server.shutdown().await.unwrap();
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// The admin API over mTLS on the node port: only the configured admin IDs
/// get in; other SVIDs get PermissionDenied, no certificate Unauthenticated.
#[tokio::test]
async fn admin_api_over_mtls_admits_only_admin_ids() {
    use meshid_proto::ca::ListEntriesRequest;
    use meshid_proto::ca::admin_client::AdminClient;

    let dir = tempfile::tempdir().unwrap();
    let admin_id: SpiffeId = format!("spiffe://{TD}/ops/admin-tool").parse().unwrap();
    let cfg = CaConfig {
        admin_ids: vec![admin_id.clone()],
        ..server::config(dir.path())
    };
    let server = server::start(cfg).await;
    let ca = Ca { server, dir };

    let (token, _) = new_token(&ca, None).await;
    let agent = attest(&ca, &token).await.unwrap();
    let tool_entry = entry(&ca, "ops/admin-tool", &agent.id, &[]).await;
    let tool_key = PrivateKey::generate_p256().unwrap();
    let resp = agent_client(&ca, &agent)
        .await
        .sign_x509_svids(SignX509SvidsRequest {
            requests: vec![item(&tool_entry, csr(&tool_key))],
        })
        .await
        .unwrap()
        .into_inner();
    let svid = match resp.results[0].result.as_ref().unwrap() {
        svid_result::Result::Svid(s) => s.clone(),
        svid_result::Result::Error(e) => panic!("signing failed: {e:?}"),
    };
    let tool_chain: Vec<CertificateDer<'static>> = svid
        .cert_chain
        .into_iter()
        .map(CertificateDer::from)
        .collect();

    let addr = ca.server.node_addr;
    let tool = ClientSvid {
        chain: &tool_chain,
        key: &tool_key,
    };
    let mut admin = AdminClient::new(ca_channel(addr, &bundle(&ca), Some(tool)).await);
    let list = admin
        .list_entries(ListEntriesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        list.entries
            .iter()
            .any(|e| e.spiffe_id == admin_id.as_str())
    );

    let mut as_agent = AdminClient::new(ca_channel(addr, &bundle(&ca), Some(agent.svid())).await);
    let err = as_agent
        .list_entries(ListEntriesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    let mut anonymous = AdminClient::new(ca_channel(addr, &bundle(&ca), None).await);
    let err = anonymous
        .list_entries(ListEntriesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
}

/// An admin client on the CA's local admin socket.
async fn admin_socket_client(ca: &Ca) -> meshid_proto::ca::admin_client::AdminClient<Channel> {
    let channel = meshid_runtime::uds::channel(&ca.server.admin_socket)
        .await
        .unwrap();
    meshid_proto::ca::admin_client::AdminClient::new(channel)
}

/// A fresh root certificate for `td`, as a federated bundle's JSON.
fn foreign_bundle(td: &TrustDomain) -> (Vec<u8>, Vec<u8>) {
    let key = PrivateKey::generate_p256().unwrap().key_pair().unwrap();
    let now = SystemTime::now();
    let root = meshid_identity::x509::self_signed_ca(
        &meshid_identity::x509::CaTemplate {
            trust_domain: td.clone(),
            common_name: "partner root".into(),
            not_before: now,
            not_after: now + Duration::from_secs(86400),
            path_len: None,
        },
        &key,
    )
    .unwrap();
    let mut b = TrustBundle::new(td.clone());
    b.x509_authorities.push(root.clone());
    (b.to_spiffe_json().into_bytes(), root.to_vec())
}

/// Syncs every page (one entry per page); for each page, the roots of the
/// federated bundles it carried (all of partner.org).
async fn sync_pages(c: &mut NodeClient<Channel>) -> Vec<Vec<Vec<Vec<u8>>>> {
    let mut pages = Vec::new();
    let mut page_token = String::new();
    loop {
        let resp = c
            .sync(SyncRequest {
                page_size: 1,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        let roots = resp
            .federated_bundles
            .iter()
            .map(|b| {
                assert_eq!(b.trust_domain, "partner.org");
                b.x509_authorities.clone()
            })
            .collect();
        pages.push(roots);
        if resp.next_page_token.is_empty() {
            return pages;
        }
        page_token = resp.next_page_token;
    }
}

/// Sync serves federated bundles from a cache shared by every page and
/// agent, yet a bundle set through the admin API is in the very next Sync.
#[tokio::test]
async fn sync_sees_a_federated_bundle_set_through_the_admin_api() {
    use meshid_proto::ca::SetFederatedBundleRequest;

    let ca = start().await;
    let (token, _) = new_token(&ca, None).await;
    let agent = attest(&ca, &token).await.unwrap();
    let partner = TrustDomain::new("partner.org").unwrap();
    for i in 0..3 {
        let mut e = NewEntry::new(
            format!("spiffe://{TD}/fed/{i}").parse().unwrap(),
            agent.id.clone(),
            vec![Selector::parse("unix:uid:1000").unwrap()],
        );
        e.federates_with = vec![partner.clone()];
        ca.server.store.create_entry(e).await.unwrap();
    }
    let mut c = agent_client(&ca, &agent).await;
    let mut admin = admin_socket_client(&ca).await;
    // No bundle stored yet: pages carry none (and the empty set is cached).
    assert_eq!(
        sync_pages(&mut c).await,
        vec![Vec::<Vec<Vec<u8>>>::new(); 3]
    );

    for _version in 1..=2 {
        let (json, root) = foreign_bundle(&partner);
        admin
            .set_federated_bundle(SetFederatedBundleRequest {
                trust_domain: "partner.org".into(),
                spiffe_json: json,
            })
            .await
            .unwrap();
        // The very next sync, and every page of it, carries the new root.
        assert_eq!(sync_pages(&mut c).await, vec![vec![vec![root.clone()]]; 3]);
    }
    ca.server.shutdown().await.unwrap();
}
