//! The agent against the real CA, both as `meshid` processes:
//!
//! 1. `meshid ca serve`; a join token and an entry for this test's uid;
//! 2. `meshid agent run` with the token and the CA bundle pinned;
//! 3. the Workload API on the agent's socket serves the entry's X.509-SVID,
//!    which verifies against the CA bundle; `/readyz` and `/metrics` agree;
//! 4. the agent's key and SVID are stored 0600; restarted without a token
//!    it reuses them and serves again.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use meshid_identity::x509::split_chain;
use meshid_identity::{BundleSet, TrustBundle, TrustDomain, verify_x509_svid};
use meshid_proto::workload::X509svidRequest;
use meshid_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use meshid_tests::{Child, Cmd, free_port, tempdir, wait_for_port};

const TD: &str = "example.org";
const READY: Duration = Duration::from_secs(60);

fn start_ca(data: &Path, logs: &Path, node_port: u16) -> (Child, PathBuf) {
    let socket = data.join("admin.sock");
    let mut child = Cmd::meshid()
        .args(["ca", "serve", "--trust-domain", TD, "--data-dir"])
        .args([data])
        .args(["--listen", &format!("127.0.0.1:{node_port}")])
        .args(["--ops-listen", &format!("127.0.0.1:{}", free_port())])
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
    wait_for_port(node_port, READY);
    (child, socket)
}

fn admin(socket: &Path, args: &[&str]) -> String {
    Cmd::meshid()
        .args(args)
        .args(["--admin-socket"])
        .args([socket])
        .run_ok()
}

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

/// Polls the agent's Workload API until it serves an SVID.
async fn wait_for_svid(
    agent: &mut Child,
    socket: &Path,
) -> meshid_proto::workload::X509svidResponse {
    let deadline = std::time::Instant::now() + READY;
    loop {
        assert!(agent.is_running(), "agent exited:\n{}", agent.log());
        if socket.exists()
            && let Some(r) = fetch_svid(socket).await
        {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no SVID from the agent:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn start_agent(config: &Path, logs: &Path) -> Child {
    Cmd::meshid()
        .args(["agent", "run", "--config"])
        .args([config])
        .env("MESHID_JOIN_TOKEN", "")
        .spawn(logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_attests_serves_svids_and_reuses_its_identity_after_restart() {
    let tmp = tempdir();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let node_port = free_port();
    let (_ca, sock) = start_ca(&tmp.path().join("ca"), &logs, node_port);

    // --- operator: token, an entry for this process's uid, the CA bundle.
    let token: serde_json::Value =
        serde_json::from_str(&admin(&sock, &["token", "generate", "--output", "json"])).unwrap();
    let secret = token["token"].as_str().unwrap().to_owned();
    let agent_id = token["spiffe_id"].as_str().unwrap().to_owned();
    let uid = std::fs::metadata(tmp.path()).unwrap().uid();
    admin(
        &sock,
        &[
            "entry",
            "create",
            "--spiffe-id",
            "spiffe://example.org/e2e",
            "--parent-id",
            &agent_id,
            "--selector",
            &format!("unix:uid:{uid}"),
        ],
    );
    let bundle_pem = admin(&sock, &["bundle", "show", "--format", "pem"]);
    let bundle_file = tmp.path().join("bundle.pem");
    std::fs::write(&bundle_file, &bundle_pem).unwrap();
    let bundle = TrustBundle::from_pem(TrustDomain::new(TD).unwrap(), &bundle_pem).unwrap();
    let bundles: BundleSet = [bundle].into_iter().collect();

    // --- the agent.
    let data = tmp.path().join("agent");
    let wl = tmp.path().join("run/agent.sock");
    let ops_port = free_port();
    let config = tmp.path().join("agent.toml");
    let base = format!(
        "trust_domain = \"{TD}\"\nca_address = \"127.0.0.1:{node_port}\"\n\
         trust_bundle_file = {bundle:?}\ndata_dir = {data:?}\nworkload_api_socket = {wl:?}\n\
         ops_listen = \"127.0.0.1:{ops_port}\"\nsync_interval = \"1s\"\n",
        bundle = bundle_file.display().to_string(),
        data = data.display().to_string(),
        wl = wl.display().to_string(),
    );
    std::fs::write(&config, format!("{base}join_token = {secret:?}\n")).unwrap();
    let mut agent = start_agent(&config, &logs);

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
    check_served(wait_for_svid(&mut agent, &wl).await);

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
    agent.terminate(Duration::from_secs(20));
    std::fs::write(&config, &base).unwrap();
    let mut agent = start_agent(&config, &logs);
    check_served(wait_for_svid(&mut agent, &wl).await);
    assert!(
        agent.log().contains("reusing stored agent SVID"),
        "{}",
        agent.log()
    );
    assert_eq!(
        std::fs::read(data.join("agent-key.pem")).unwrap(),
        key_before
    );
    agent.terminate(Duration::from_secs(20));
}
