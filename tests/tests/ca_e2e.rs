//! The CA end to end, with the real `meshid` binary:
//!
//! 1. start `meshid ca serve` (fresh data dir, free ports);
//! 2. create a join token and two registration entries with the CLI;
//! 3. attest a test agent with the token over TLS (CA pinned by its bundle),
//!    sync its entries and get a batch of X.509-SVIDs over mTLS;
//! 4. verify every SVID with `openssl verify -x509_strict` against
//!    `meshid bundle show --format pem`;
//! 5. restart the CA: same root, entries and agent kept, the agent's SVID
//!    still accepted.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use meshid_identity::tls::{PeerMatch, SpiffeServerVerifier};
use meshid_identity::{BundleSet, PrivateKey, SpiffeId, TrustBundle, TrustDomain};
use meshid_proto::ca::{self as pb, node_client::NodeClient, svid_result};
use meshid_tests::{Child, Cmd, free_port, tempdir, wait_for_port, wait_for_socket};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::Value;
use tonic::transport::{Channel, Endpoint};

const TD: &str = "example.org";
/// Start-up budget: generous for a debug build on a loaded CI machine.
const READY: Duration = Duration::from_secs(60);

struct Ca {
    child: Child,
    socket: PathBuf,
    node_port: u16,
}

fn start_ca(data: &Path, logs: &Path, node_port: u16) -> Ca {
    let socket = data.join("admin.sock");
    let ops_port = free_port();
    let mut child = Cmd::meshid()
        .args(["ca", "serve", "--trust-domain", TD, "--data-dir"])
        .args([data])
        .args(["--listen", &format!("127.0.0.1:{node_port}")])
        .args(["--ops-listen", &format!("127.0.0.1:{ops_port}")])
        .args(["--admin-socket"])
        .args([&socket])
        .spawn(logs);
    meshid_tests::eventually("the CA admin socket", READY, || {
        assert!(
            child.is_running(),
            "meshid ca serve exited:\n{}",
            child.log()
        );
        std::os::unix::net::UnixStream::connect(&socket)
            .ok()
            .map(|_| ())
    });
    wait_for_socket(&socket, READY);
    wait_for_port(node_port, READY);
    Ca {
        child,
        socket,
        node_port,
    }
}

/// `meshid <args> --admin-socket <socket>`, which must succeed.
fn meshid(socket: &Path, args: &[&str]) -> String {
    Cmd::meshid()
        .args(args)
        .args(["--admin-socket"])
        .args([socket])
        .run_ok()
}

fn meshid_json(socket: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = meshid(socket, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// A tonic channel to the node API over rustls, pinning the CA by `bundle`
/// and presenting `client` (agent SVID chain + key) if given.
async fn node_client(
    port: u16,
    bundle: &TrustBundle,
    client: Option<(Vec<CertificateDer<'static>>, &PrivateKey)>,
) -> NodeClient<Channel> {
    let ca_id = SpiffeId::parse(&format!("spiffe://{TD}/meshid/ca")).unwrap();
    let bundles: BundleSet = [bundle.clone()].into_iter().collect();
    let verifier = SpiffeServerVerifier::new(Arc::new(bundles), PeerMatch::OneOf(vec![ca_id]));
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(
                chain,
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec())),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let config = Arc::clone(&config);
            async move {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                let name = ServerName::try_from("meshid-ca").unwrap();
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .unwrap();
    NodeClient::new(channel)
}

fn csr(key: &PrivateKey) -> Vec<u8> {
    rcgen::CertificateParams::default()
        .serialize_request(&key.key_pair().unwrap())
        .unwrap()
        .der()
        .to_vec()
}

/// A self-signed root of another trust domain, as its bundle.
fn foreign_bundle(td: &TrustDomain) -> TrustBundle {
    let key = PrivateKey::generate_p256().unwrap().key_pair().unwrap();
    let now = std::time::SystemTime::now();
    let root = meshid_identity::x509::self_signed_ca(
        &meshid_identity::CaTemplate {
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
    b.x509_authorities.push(root);
    b
}

fn ders(chain: &[Vec<u8>]) -> Vec<CertificateDer<'static>> {
    chain
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect()
}

/// `openssl verify -x509_strict -CAfile <(meshid bundle show --format pem)`.
fn openssl_verify(socket: &Path, dir: &Path, name: &str, chain: &[Vec<u8>]) {
    let certs = ders(chain);
    let leaf = dir.join(format!("{name}.pem"));
    std::fs::write(&leaf, meshid_identity::x509::to_pem(&certs[..1])).unwrap();
    let untrusted = dir.join(format!("{name}-chain.pem"));
    let untrusted_arg = if certs.len() > 1 {
        std::fs::write(&untrusted, meshid_identity::x509::to_pem(&certs[1..])).unwrap();
        format!("-untrusted '{}'", untrusted.display())
    } else {
        String::new()
    };
    let script = format!(
        "openssl verify -x509_strict -purpose sslclient \
         -CAfile <('{bin}' bundle show --format pem --admin-socket '{sock}') {untrusted_arg} '{leaf}'",
        bin = meshid_tests::meshid_bin().display(),
        sock = socket.display(),
        leaf = leaf.display(),
    );
    let out = Cmd::new("bash").args(["-c", &script]).run_ok();
    assert!(out.trim_end().ends_with(": OK"), "openssl said:\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_issues_verifiable_svids_and_keeps_state_across_restart() {
    let tmp = tempdir();
    let data = tmp.path().join("ca");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let node_port = free_port();
    let mut ca = start_ca(&data, &logs, node_port);
    let sock = ca.socket.clone();

    // --- operator: a join token and two entries under the agent it yields.
    let token = meshid_json(&sock, &["token", "generate", "--ttl", "10m"]);
    let secret = token["token"].as_str().unwrap().to_owned();
    let agent_id = token["spiffe_id"].as_str().unwrap().to_owned();
    assert!(
        agent_id.starts_with(&format!("spiffe://{TD}/")),
        "{agent_id}"
    );
    let text = meshid(&sock, &["token", "generate"]);
    assert!(text.contains("Agent ID"), "{text}");

    let web = meshid_json(
        &sock,
        &[
            "entry",
            "create",
            "--spiffe-id",
            "spiffe://example.org/web",
            "--parent-id",
            &agent_id,
            "--selector",
            "unix:uid:1000",
            "--dns-name",
            "web.example.org",
            "--x509-ttl",
            "30m",
        ],
    );
    let db = meshid_json(
        &sock,
        &[
            "entry",
            "create",
            "--spiffe-id",
            "spiffe://example.org/db",
            "--parent-id",
            &agent_id,
            "--selector",
            "unix:uid:1001",
            "--selector",
            "unix:gid:50",
        ],
    );
    assert_eq!(web["revision"], 1);
    assert_eq!(db["selectors"].as_array().unwrap().len(), 2);

    // Bad input is refused with a message saying what to fix, and not stored.
    let bad = Cmd::meshid()
        .args([
            "entry",
            "create",
            "--spiffe-id",
            "spiffe://other.org/x",
            "--parent-id",
        ])
        .args([&agent_id, "--selector", "unix:uid:1", "--admin-socket"])
        .args([&sock])
        .output();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("trust domain example.org"), "{err}");

    // --- the agent: pin the CA by its bundle, attest, sync, sign a batch.
    let bundle_pem = meshid(&sock, &["bundle", "show", "--format", "pem"]);
    let bundle = TrustBundle::from_pem(TrustDomain::new(TD).unwrap(), &bundle_pem).unwrap();
    assert_eq!(bundle.x509_authorities.len(), 1);
    let spiffe_json = meshid(&sock, &["bundle", "show", "--format", "spiffe"]);
    assert_eq!(
        TrustBundle::from_spiffe_json(TrustDomain::new(TD).unwrap(), spiffe_json.as_bytes())
            .unwrap()
            .x509_authorities,
        bundle.x509_authorities
    );

    let agent_key = PrivateKey::generate_p256().unwrap();
    let mut anonymous = node_client(ca.node_port, &bundle, None).await;
    let attested = anonymous
        .attest(pb::AttestRequest {
            attestation_type: "join_token".into(),
            payload: secret.clone().into_bytes(),
            csr: csr(&agent_key),
        })
        .await
        .unwrap()
        .into_inner();
    let agent_svid = attested.svid.unwrap();
    assert_eq!(agent_svid.spiffe_id, agent_id);
    // The token admits one node only.
    let replay = anonymous
        .attest(pb::AttestRequest {
            attestation_type: "join_token".into(),
            payload: secret.into_bytes(),
            csr: csr(&agent_key),
        })
        .await
        .unwrap_err();
    assert_eq!(replay.code(), tonic::Code::Unauthenticated, "{replay:?}");

    let agent_chain = ders(&agent_svid.cert_chain);
    let mut agent = node_client(
        ca.node_port,
        &bundle,
        Some((agent_chain.clone(), &agent_key)),
    )
    .await;
    let synced = agent
        .sync(pb::SyncRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut entry_ids: Vec<(String, String)> = synced
        .entries
        .iter()
        .map(|e| (e.spiffe_id.clone(), e.id.clone()))
        .collect();
    entry_ids.sort();
    assert_eq!(
        entry_ids,
        vec![
            (
                "spiffe://example.org/db".to_owned(),
                db["id"].as_str().unwrap().to_owned()
            ),
            (
                "spiffe://example.org/web".to_owned(),
                web["id"].as_str().unwrap().to_owned()
            ),
        ]
    );

    let keys: Vec<PrivateKey> = (0..entry_ids.len())
        .map(|_| PrivateKey::generate_p256().unwrap())
        .collect();
    let signed = agent
        .sign_x509_svids(pb::SignX509SvidsRequest {
            requests: entry_ids
                .iter()
                .zip(&keys)
                .map(|((_, id), key)| pb::SvidRequest {
                    entry_id: id.clone(),
                    csr: csr(key),
                    ttl_seconds: 0,
                })
                .collect(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed.results.len(), 2);
    let svids_dir = tmp.path().join("svids");
    std::fs::create_dir_all(&svids_dir).unwrap();
    for (((want_id, entry_id), result), key) in entry_ids.iter().zip(signed.results).zip(&keys) {
        let svid = match result.result.unwrap() {
            svid_result::Result::Svid(s) => s,
            svid_result::Result::Error(e) => panic!("{want_id}: {e:?}"),
        };
        assert_eq!(&svid.spiffe_id, want_id);
        assert_eq!(&svid.entry_id, entry_id);
        let leaf = &svid.cert_chain[0];
        assert_eq!(
            meshid_identity::x509::spiffe_id_of(leaf)
                .unwrap()
                .to_string(),
            *want_id
        );
        let name = want_id.rsplit('/').next().unwrap();
        std::fs::write(
            svids_dir.join(format!("{name}-key.pem")),
            key.to_pkcs8_pem().as_bytes(),
        )
        .unwrap();
        openssl_verify(&sock, &svids_dir, name, &svid.cert_chain);
    }
    // The agent's own SVID verifies the same way.
    openssl_verify(&sock, &svids_dir, "agent", &agent_svid.cert_chain);

    // A federated trust domain's bundle, set from a SPIFFE bundle JSON file.
    let partner = TrustDomain::new("partner.org").unwrap();
    let partner_json = tmp.path().join("partner.json");
    std::fs::write(&partner_json, foreign_bundle(&partner).to_spiffe_json()).unwrap();
    let set = meshid_json(
        &sock,
        &[
            "bundle",
            "set",
            "--trust-domain",
            "partner.org",
            "--file",
            partner_json.to_str().unwrap(),
        ],
    );
    assert_eq!(set["x509_authorities"], 1);

    let agents = meshid_json(&sock, &["agent", "list"]);
    assert_eq!(agents["agents"][0]["spiffe_id"], agent_id.as_str());
    assert_eq!(agents["agents"][0]["attestation_type"], "join_token");

    // --- restart: same root, same entries and agent, SVID still accepted.
    let status = ca.child.terminate(Duration::from_secs(20));
    assert!(
        status.success(),
        "CA exited with {status}:\n{}",
        ca.child.log()
    );
    drop(agent);
    let ca2 = start_ca(&data, &logs, node_port);
    let bundle_after = meshid(&ca2.socket, &["bundle", "show", "--format", "pem"]);
    assert_eq!(
        bundle_after, bundle_pem,
        "the root changed across a restart"
    );

    let listed = meshid_json(&ca2.socket, &["entry", "list"]);
    let mut after: Vec<(String, String)> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["spiffe_id"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    after.sort();
    assert_eq!(after, entry_ids);
    let partner_after = meshid(
        &ca2.socket,
        &[
            "bundle",
            "show",
            "--trust-domain",
            "partner.org",
            "--format",
            "spiffe",
        ],
    );
    assert_eq!(
        TrustBundle::from_spiffe_json(partner.clone(), partner_after.as_bytes())
            .unwrap()
            .x509_authorities,
        TrustBundle::from_spiffe_json(partner, &std::fs::read(&partner_json).unwrap())
            .unwrap()
            .x509_authorities
    );
    let agents_text = meshid(&ca2.socket, &["agent", "list"]);
    assert!(agents_text.contains(&agent_id), "{agents_text}");

    let mut agent = node_client(ca2.node_port, &bundle, Some((agent_chain, &agent_key))).await;
    let again = agent
        .sync(pb::SyncRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.entries.len(), 2);

    // Banning takes effect at once: the agent is refused.
    let banned = meshid_json(&ca2.socket, &["agent", "ban", &agent_id]);
    assert_eq!(banned["banned"], true);
    let refused = agent.sync(pb::SyncRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
}
