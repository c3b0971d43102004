//! The agent against the real CA, both as `meshid` processes:
//!
//! 1. `meshid ca serve`; a join token and an entry for this test's uid;
//! 2. `meshid agent run` with the token and the CA bundle pinned;
//! 3. the Workload API on the agent's socket serves the entry's X.509-SVID,
//!    which verifies against the CA bundle; `/readyz` and `/metrics` agree;
//! 4. the agent's key and SVID are stored 0600; restarted without a token
//!    it reuses them and serves again.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use meshid_identity::x509::split_chain;
use meshid_identity::{BundleSet, TrustBundle, TrustDomain, verify_x509_svid};
use meshid_proto::workload::X509svidRequest;
use meshid_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use meshid_tests::{TestAgent, TestCa, current_uid, eventually_async, tempdir, wait_for_port};

const READY: Duration = Duration::from_secs(60);

/// Plain HTTP/1.1 GET on loopback: (status line, body).
async fn http_get(port: u16, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.lines().next().unwrap_or_default().to_owned();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The first X.509-SVID response from the Workload API at `socket`, or
/// `None` while the agent cannot answer yet.
async fn fetch_svid(socket: &Path) -> Option<meshid_proto::workload::X509svidResponse> {
    let channel = meshid_runtime::uds::channel(socket).await.ok()?;
    let mut client = SpiffeWorkloadApiClient::new(channel);
    let mut req = tonic::Request::new(X509svidRequest {});
    req.metadata_mut()
        .insert("workload.spiffe.io", "true".parse().unwrap());
    let mut stream = client.fetch_x509svid(req).await.ok()?.into_inner();
    stream.message().await.ok()?.filter(|r| !r.svids.is_empty())
}

/// Polls the agent's Workload API until it serves an SVID; panics if the
/// agent exits.
async fn wait_for_svid(agent: &mut TestAgent) -> meshid_proto::workload::X509svidResponse {
    let socket = &agent.workload_socket;
    let child = &mut agent.child;
    eventually_async("an SVID from the agent", READY, || {
        assert!(child.is_running(), "agent exited:\n{}", child.log());
        async move { fetch_svid(socket).await }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_attests_serves_svids_and_reuses_its_identity_after_restart() {
    let tmp = tempdir();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let ca = TestCa::builder(tmp.path().join("ca"), &logs).start();

    // --- operator: token, an entry for this process's uid, the CA bundle.
    let token = ca.join_token();
    ca.create_entry(
        "spiffe://example.org/e2e",
        &token.agent_id,
        &[&format!("unix:uid:{}", current_uid())],
    );
    let bundle_pem = ca.bundle_pem();
    let bundle =
        TrustBundle::from_pem(TrustDomain::new(ca.trust_domain()).unwrap(), &bundle_pem).unwrap();
    let bundles: BundleSet = [bundle].into_iter().collect();

    // --- the agent (it pins the CA by the same bundle, written to a file).
    let mut agent = TestAgent::builder(&ca, tmp.path())
        .join_token(&token.secret)
        .ops()
        .start(&logs);
    let data = agent.data_dir.clone();
    let ops_port = agent.ops_port.unwrap();

    let check_served = |resp: meshid_proto::workload::X509svidResponse| {
        assert_eq!(resp.svids.len(), 1, "{resp:?}");
        let svid = &resp.svids[0];
        assert_eq!(svid.spiffe_id, "spiffe://example.org/e2e");
        let chain = split_chain(&svid.x509_svid)
            .expect("the x509_svid field is concatenated DER certificates");
        let v = verify_x509_svid(&chain, &bundles, SystemTime::now()).unwrap();
        assert_eq!(v.spiffe_id.as_str(), "spiffe://example.org/e2e");
        assert!(!svid.x509_svid_key.is_empty());
    };
    check_served(wait_for_svid(&mut agent).await);

    wait_for_port(ops_port, READY);
    let (status, _) = http_get(ops_port, "/readyz").await;
    assert!(status.contains("200"), "{status}");
    let (_, metrics) = http_get(ops_port, "/metrics").await;
    assert!(metrics.contains("meshid_agent_svids_cached 1"), "{metrics}");
    assert!(metrics.contains("meshid_agent_ca_reachable 1"), "{metrics}");

    for f in ["agent-key.pem", "agent-svid.pem", "bundle.json"] {
        let mode = std::fs::metadata(data.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let key_before = std::fs::read(data.join("agent-key.pem")).unwrap();

    // --- restart without a token: the stored identity is reused.
    agent.child.terminate(Duration::from_secs(20));
    let mut agent = TestAgent::builder(&ca, tmp.path()).start(&logs);
    assert!(
        !std::fs::read_to_string(&agent.config_file)
            .unwrap()
            .contains("join_token"),
        "the restarted agent has no token"
    );
    check_served(wait_for_svid(&mut agent).await);
    assert!(
        agent.child.log().contains("reusing stored agent SVID"),
        "{}",
        agent.child.log()
    );
    assert_eq!(
        std::fs::read(data.join("agent-key.pem")).unwrap(),
        key_before
    );
    agent.child.terminate(Duration::from_secs(20));
}
