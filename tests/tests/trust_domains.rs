//! Two trust domains in one `meshid ca serve` (`[[trust_domains]]`), end
//! to end with the real binary: each has its own root (bundle), admin
//! socket, entries and node port; an agent attested in one can never get
//! an SVID of the other (its SVID is refused at the other's TLS handshake,
//! an entry of the other's ID is refused by its admin API, a CSR asking
//! for the other's ID yields none); federation is explicit (`meshid bundle
//! set` with the other's bundle, then an entry's `federates_with`
//! delivers it).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use meshid_identity::{PrivateKey, TrustBundle, TrustDomain};
use meshid_proto::ca::node_client::NodeClient;
use meshid_proto::ca::{self as pb, svid_result};
use meshid_tests::node::{csr, try_ca_channel};
use meshid_tests::{
    ClientSvid, Cmd, TestCa, eventually, free_port, node_client, tempdir, wait_for_port,
    wait_for_socket,
};
use rustls::pki_types::CertificateDer;

const A: &str = "example.org";
const B: &str = "other.org";

/// The second trust domain of the process: its socket and node address.
struct Other {
    admin_socket: PathBuf,
    node_addr: SocketAddr,
}

impl Other {
    fn admin(&self, args: &[&str]) -> String {
        Cmd::meshid()
            .args(args)
            .args(["--admin-socket"])
            .args([&self.admin_socket])
            .run_ok()
    }

    fn admin_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        serde_json::from_str(&self.admin(&all)).unwrap()
    }
}

fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).unwrap()
}

fn ders(chain: &[Vec<u8>]) -> Vec<CertificateDer<'static>> {
    chain
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect()
}

fn entries(v: &serde_json::Value) -> Vec<String> {
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["spiffe_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A CSR whose request names `uri` as its SAN (the CA must ignore it).
fn csr_asking_for(key: &PrivateKey, uri: &str) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
    params
        .serialize_request(&key.key_pair().unwrap())
        .unwrap()
        .der()
        .to_vec()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trust_domains_in_one_ca_are_isolated_and_federate_only_when_told() {
    let tmp = tempdir();
    let (b_port, b_ops) = (free_port(), free_port());
    let data_dir = tmp.path().join("ca");
    let ca = TestCa::builder(&data_dir, tmp.path())
        .config(&format!(
            "[[trust_domains]]\ntrust_domain = \"{B}\"\nlisten = \"127.0.0.1:{b_port}\"\n\
             ops_listen = \"127.0.0.1:{b_ops}\"\n"
        ))
        .start();
    let other = Other {
        admin_socket: data_dir.join(B).join("admin.sock"),
        node_addr: SocketAddr::from(([127, 0, 0, 1], b_port)),
    };
    wait_for_socket(&other.admin_socket, meshid_tests::ca::READY);
    wait_for_port(b_port, meshid_tests::ca::READY);

    // --- each its own root, authority and store.
    let a_bundle = TrustBundle::from_pem(td(A), &ca.bundle_pem()).unwrap();
    let b_pem = other.admin(&["bundle", "show", "--format", "pem"]);
    let b_bundle = TrustBundle::from_pem(td(B), &b_pem).unwrap();
    assert_eq!(a_bundle.x509_authorities.len(), 1);
    assert_eq!(b_bundle.x509_authorities.len(), 1);
    assert_ne!(a_bundle.x509_authorities, b_bundle.x509_authorities);
    assert_eq!(ca.admin_json(&["ca", "show"])["trust_domain"], A);
    assert_eq!(other.admin_json(&["ca", "show"])["trust_domain"], B);
    let (status, _) = meshid_tests::http::http(b_ops, "GET", "/healthz");
    assert_eq!(status, 200, "B's ops endpoint answers");

    // --- an agent of A, with an entry in A; B has its own entry.
    let token = ca.join_token();
    let web_a = ca.create_entry(
        &format!("spiffe://{A}/web"),
        &token.agent_id,
        &["unix:uid:1"],
    );
    let b_token = other.admin_json(&["token", "generate"]);
    let b_agent = b_token["spiffe_id"].as_str().unwrap();
    let web_b = other.admin_json(&[
        "entry",
        "create",
        "--spiffe-id",
        &format!("spiffe://{B}/web"),
        "--parent-id",
        b_agent,
        "--selector",
        "unix:uid:1",
    ]);
    assert_eq!(
        entries(&ca.admin_json(&["entry", "list"])),
        [format!("spiffe://{A}/web")]
    );
    assert_eq!(
        entries(&other.admin_json(&["entry", "list"])),
        [format!("spiffe://{B}/web")]
    );

    // A's join token means nothing to B.
    let mut anonymous_b = node_client(other.node_addr, &b_bundle, None).await;
    let agent_key = PrivateKey::generate_p256().unwrap();
    let e = anonymous_b
        .attest(pb::AttestRequest {
            attestation_type: "join_token".into(),
            payload: token.secret.clone().into_bytes(),
            csr: csr(&agent_key),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");

    let mut anonymous_a = node_client(ca.node_addr(), &a_bundle, None).await;
    let attested = anonymous_a
        .attest(pb::AttestRequest {
            attestation_type: "join_token".into(),
            payload: token.secret.clone().into_bytes(),
            csr: csr_asking_for(&agent_key, &format!("spiffe://{B}/meshid/agent/x")),
        })
        .await
        .unwrap()
        .into_inner();
    let agent_svid = attested.svid.unwrap();
    assert_eq!(agent_svid.spiffe_id, token.agent_id);
    assert!(agent_svid.spiffe_id.starts_with(&format!("spiffe://{A}/")));
    let chain = ders(&agent_svid.cert_chain);
    let creds = ClientSvid {
        chain: &chain,
        key: &agent_key,
    };

    // --- A's SVID at B's node port: the TLS handshake refuses it.
    let refused = match try_ca_channel(other.node_addr, &b_bundle, Some(creds)).await {
        Err(e) => e,
        Ok(channel) => NodeClient::new(channel)
            .sync(pb::SyncRequest::default())
            .await
            .map(|_| ())
            .expect_err("B served an agent of A")
            .to_string(),
    };
    // The same port took the anonymous connection above: the client
    // certificate is what B refuses (the connection is closed, no RPC runs).
    assert!(!refused.contains("PermissionDenied"), "{refused}");

    // --- A's admin API refuses an entry of B's ID.
    let e = ca.admin_refused(&[
        "entry",
        "create",
        "--spiffe-id",
        &format!("spiffe://{B}/web"),
        "--parent-id",
        &token.agent_id,
        "--selector",
        "unix:uid:1",
    ]);
    assert!(e.contains(&format!("trust domain {A}")), "{e}");
    assert_eq!(
        entries(&ca.admin_json(&["entry", "list"])),
        [format!("spiffe://{A}/web")]
    );

    // --- A's node API: B's entry is unknown there, and a CSR asking for
    // B's ID gets A's entry's ID only.
    let mut agent = node_client(ca.node_addr(), &a_bundle, Some(creds)).await;
    let synced = agent
        .sync(pb::SyncRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(synced.entries.len(), 1);
    assert!(synced.federated_bundles.is_empty());
    let key = PrivateKey::generate_p256().unwrap();
    let b_id = format!("spiffe://{B}/web");
    let signed = agent
        .sign_x509_svids(pb::SignX509SvidsRequest {
            requests: vec![
                pb::SvidRequest {
                    entry_id: web_b["id"].as_str().unwrap().to_owned(),
                    csr: csr_asking_for(&key, &b_id),
                    ttl_seconds: 0,
                },
                pb::SvidRequest {
                    entry_id: web_a["id"].as_str().unwrap().to_owned(),
                    csr: csr_asking_for(&key, &b_id),
                    ttl_seconds: 0,
                },
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed.results.len(), 2);
    match signed.results[0].result.clone().unwrap() {
        svid_result::Result::Error(e) => assert!(e.message.contains("does not exist"), "{e:?}"),
        svid_result::Result::Svid(s) => panic!("A signed B's entry: {}", s.spiffe_id),
    }
    match signed.results[1].result.clone().unwrap() {
        svid_result::Result::Svid(s) => {
            assert_eq!(s.spiffe_id, format!("spiffe://{A}/web"));
            let id = meshid_identity::x509::spiffe_id_of(&s.cert_chain[0]).unwrap();
            assert_eq!(id.to_string(), format!("spiffe://{A}/web"));
        }
        svid_result::Result::Error(e) => panic!("A's own entry: {e:?}"),
    }

    // --- federation, explicit on each side.
    let a_json = ca.admin(&["bundle", "show", "--format", "spiffe"]);
    let b_json = other.admin(&["bundle", "show", "--format", "spiffe"]);
    let a_file = write(tmp.path(), "a.json", &a_json);
    let b_file = write(tmp.path(), "b.json", &b_json);
    let unknown = ca.admin_refused(&["bundle", "show", "--trust-domain", B]);
    assert!(
        unknown.contains(&format!("no bundle for trust domain {B}")),
        "{unknown}"
    );
    ca.admin(&["bundle", "set", "--trust-domain", B, "--file", &b_file]);
    other.admin(&["bundle", "set", "--trust-domain", A, "--file", &a_file]);
    let federated = ca.admin_json(&[
        "entry",
        "create",
        "--spiffe-id",
        &format!("spiffe://{A}/api"),
        "--parent-id",
        &token.agent_id,
        "--selector",
        "unix:uid:2",
        "--federates-with",
        B,
    ]);
    assert_eq!(federated["federates_with"][0], B);
    let synced = agent
        .sync(pb::SyncRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(synced.entries.len(), 2);
    assert_eq!(synced.federated_bundles.len(), 1);
    let delivered = &synced.federated_bundles[0];
    assert_eq!(delivered.trust_domain, B);
    let delivered = meshid_proto::convert::trust_bundle(delivered).expect("a usable bundle of B");
    assert_eq!(delivered.x509_authorities, b_bundle.x509_authorities);
    // B holds A's bundle now, and still only its own entries.
    let held = other.admin(&["bundle", "show", "--trust-domain", A, "--format", "pem"]);
    assert_eq!(
        TrustBundle::from_pem(td(A), &held)
            .unwrap()
            .x509_authorities,
        a_bundle.x509_authorities
    );
    assert_eq!(
        entries(&other.admin_json(&["entry", "list"])),
        [format!("spiffe://{B}/web")]
    );
}

#[test]
fn a_trust_domain_that_cannot_start_stops_the_process_naming_it() {
    let tmp = tempdir();
    // B's node port is taken: the CA names B and exits, A shut down again.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let data_dir = tmp.path().join("ca");
    let config = write(
        tmp.path(),
        "taken.toml",
        &format!(
            "[[trust_domains]]\ntrust_domain = \"{B}\"\nlisten = \"127.0.0.1:{port}\"\n\
             ops_listen = \"127.0.0.1:{}\"\n",
            free_port()
        ),
    );
    let mut child = Cmd::meshid()
        .args(["ca", "serve", "--trust-domain", A, "--data-dir"])
        .args([&data_dir])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--ops-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--config", &config])
        .spawn(tmp.path());
    let status = eventually("the CA to exit", meshid_tests::ca::READY, || {
        child.exit_status()
    });
    assert!(!status.success());
    let log = child.log();
    assert!(
        log.contains(&format!(
            "trust domain {B}: cannot listen on node API 127.0.0.1:{port}"
        )),
        "{log}"
    );
    assert!(
        !data_dir.join("admin.sock").exists(),
        "A's socket was left behind"
    );

    // Clashing settings are refused before anything starts, naming both.
    let out = Cmd::meshid()
        .args(["ca", "validate", "--trust-domain", A, "--data-dir"])
        .args([&data_dir])
        .args(["--listen", "127.0.0.1:18443", "--config"])
        .args([write(
            tmp.path(),
            "clash.toml",
            &format!(
                "[[trust_domains]]\ntrust_domain = \"{B}\"\nlisten = \"127.0.0.1:18443\"\n\
                 ops_listen = \"127.0.0.1:18444\"\n"
            ),
        )])
        .output();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "trust domains {A} and {B} have the same listen or ops_listen"
        )),
        "{err}"
    );
}
