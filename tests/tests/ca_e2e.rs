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

use std::path::Path;
use std::time::Duration;

use meshid_identity::{PrivateKey, TrustBundle, TrustDomain};
use meshid_proto::ca::{self as pb, svid_result};
use meshid_tests::node::csr;
use meshid_tests::{ClientSvid, Cmd, TestCa, node_client, tempdir};
use rustls::pki_types::CertificateDer;

const TD: &str = "example.org";

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
    let mut ca = TestCa::builder(&data, &logs).start();
    let sock = ca.admin_socket.clone();

    // --- operator: a join token and two entries under the agent it yields.
    let token = ca.admin_json(&["token", "generate", "--ttl", "10m"]);
    let secret = token["token"].as_str().unwrap().to_owned();
    let agent_id = token["spiffe_id"].as_str().unwrap().to_owned();
    assert!(
        agent_id.starts_with(&format!("spiffe://{TD}/")),
        "{agent_id}"
    );
    let text = ca.admin(&["token", "generate"]);
    assert!(text.contains("Agent ID"), "{text}");

    let web = ca.admin_json(&[
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
    ]);
    let db = ca.admin_json(&[
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
    ]);
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
    let bundle_pem = ca.bundle_pem();
    let bundle = TrustBundle::from_pem(TrustDomain::new(TD).unwrap(), &bundle_pem).unwrap();
    assert_eq!(bundle.x509_authorities.len(), 1);
    let spiffe_json = ca.admin(&["bundle", "show", "--format", "spiffe"]);
    assert_eq!(
        TrustBundle::from_spiffe_json(TrustDomain::new(TD).unwrap(), spiffe_json.as_bytes())
            .unwrap()
            .x509_authorities,
        bundle.x509_authorities
    );

    let agent_key = PrivateKey::generate_p256().unwrap();
    let mut anonymous = node_client(ca.node_addr(), &bundle, None).await;
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
    let agent_svid_creds = ClientSvid {
        chain: &agent_chain,
        key: &agent_key,
    };
    let mut agent = node_client(ca.node_addr(), &bundle, Some(agent_svid_creds)).await;
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
    let set = ca.admin_json(&[
        "bundle",
        "set",
        "--trust-domain",
        "partner.org",
        "--file",
        partner_json.to_str().unwrap(),
    ]);
    assert_eq!(set["x509_authorities"], 1);

    let agents = ca.admin_json(&["agent", "list"]);
    assert_eq!(agents["agents"][0]["spiffe_id"], agent_id.as_str());
    assert_eq!(agents["agents"][0]["attestation_type"], "join_token");

    // --- restart: same root, same entries and agent, SVID still accepted.
    let status = ca.stop();
    assert!(
        status.success(),
        "CA exited with {status}:\n{}",
        ca.child.log()
    );
    drop(agent);
    let ca2 = ca.start_again();
    let bundle_after = ca2.bundle_pem();
    assert_eq!(
        bundle_after, bundle_pem,
        "the root changed across a restart"
    );

    let listed = ca2.admin_json(&["entry", "list"]);
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
    let partner_after = ca2.admin(&[
        "bundle",
        "show",
        "--trust-domain",
        "partner.org",
        "--format",
        "spiffe",
    ]);
    assert_eq!(
        TrustBundle::from_spiffe_json(partner.clone(), partner_after.as_bytes())
            .unwrap()
            .x509_authorities,
        TrustBundle::from_spiffe_json(partner, &std::fs::read(&partner_json).unwrap())
            .unwrap()
            .x509_authorities
    );
    let agents_text = ca2.admin(&["agent", "list"]);
    assert!(agents_text.contains(&agent_id), "{agents_text}");

    let mut agent = node_client(ca2.node_addr(), &bundle, Some(agent_svid_creds)).await;
    let again = agent
        .sync(pb::SyncRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.entries.len(), 2);

    // Banning takes effect at once: the agent is refused.
    let banned = ca2.admin_json(&["agent", "ban", &agent_id]);
    assert_eq!(banned["banned"], true);
    let refused = agent.sync(pb::SyncRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
}
