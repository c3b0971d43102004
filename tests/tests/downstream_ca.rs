//! A meshid CA below another meshid CA, every piece a real process:
//!
//! 1. the upstream `meshid ca serve` with an agent and a workload
//!    (`spiffe://example.org/west`);
//! 2. on it, a join token with a node alias and a `--downstream` entry for
//!    that alias (`meshid token generate`, `meshid entry create`);
//! 3. a downstream `meshid ca serve` with `[upstream.meshid]` (the
//!    upstream's address, its bundle, the token), an agent under it and a
//!    workload (`spiffe://example.org/east`);
//! 4. east's SVID, as its agent serves it, verifies with `openssl verify
//!    -x509_strict -CAfile <upstream root> -untrusted <chain>`;
//! 5. west's `meshid proxy` outbound (pinned to east) → east's `meshid
//!    proxy` inbound (a policy allowing only west) → backend: each proxy
//!    trusts only its own agent's bundle, so each side verified the other's
//!    SVID across the two CAs;
//! 6. a JWT-SVID from each agent validates through the other agent's
//!    Workload API (`ValidateJWTSVID`): the downstream serves the upstream's
//!    JWT keys, and the upstream publishes the downstream's, which it got
//!    with `SignDownstreamCa`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use meshid_identity::x509::{pem_certs, to_pem};
use meshid_tests::http::{backend, http};
use meshid_tests::workload_client::{fetch_jwt, validate_jwt};
use meshid_tests::{
    Child, Cmd, Mesh, TestAgent, TestCa, current_uid, eventually, eventually_async, free_port,
};

/// How long the proxies may take to get their SVIDs and connect.
const READY: Duration = Duration::from_secs(45);
const ALIAS: &str = "spiffe://example.org/node/downstream-east";
const EAST: &str = "spiffe://example.org/east";

#[test]
fn workloads_of_an_upstream_and_a_downstream_ca_call_each_other_over_mtls() {
    let west = Mesh::start("/west");
    let dir = west.tmp.path();
    let token = west
        .ca
        .admin_json(&["token", "generate", "--spiffe-id", ALIAS])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    west.ca.admin_json(&[
        "entry",
        "create",
        "--spiffe-id",
        "spiffe://example.org/downstream/east",
        "--parent-id",
        ALIAS,
        "--selector",
        &format!("join_token:alias:{ALIAS}"),
        "--downstream",
    ]);
    let upstream_root = dir.join("upstream-root.pem");
    std::fs::write(&upstream_root, west.ca.bundle_pem()).unwrap();
    let token_file = dir.join("downstream.token");
    std::fs::write(&token_file, &token).unwrap();
    let downstream = TestCa::builder(dir.join("downstream-ca"), &west.logs)
        .config(&format!(
            "[upstream.meshid]\nca_address = \"{}\"\ntrust_bundle_file = {:?}\n\
             join_token_file = {:?}\n",
            west.ca.node_addr(),
            upstream_root.display().to_string(),
            token_file.display().to_string(),
        ))
        .start();
    let east_token = downstream.join_token();
    downstream.create_entry(
        EAST,
        &east_token.agent_id,
        &[&format!("unix:uid:{}", current_uid())],
    );
    let east_dir = dir.join("east");
    std::fs::create_dir(&east_dir).unwrap();
    let mut east = TestAgent::builder(&downstream, &east_dir)
        .join_token(&east_token.secret)
        .start(&west.logs);
    east.wait_for_svid(Some(EAST));

    openssl_verifies(&east.workload_socket, &upstream_root, dir);
    proxies_call_each_other(&west, &east.workload_socket);
    jwt_svids_validate_across(west.workload_socket(), &east.workload_socket);
}

/// A JWT-SVID fetched from each agent validates at the other agent.
fn jwt_svids_validate_across(west: &Path, east: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (from, to, audience) in [(west, east, "east"), (east, west, "west")] {
        let id = rt.block_on(eventually_async(
            "a JWT-SVID validated by the other CA's agent",
            READY,
            || async move {
                let token = fetch_jwt(from, audience).await?;
                validate_jwt(to, &token, audience).await
            },
        ));
        let expected = if audience == "east" {
            "spiffe://example.org/west"
        } else {
            EAST
        };
        assert_eq!(id, expected);
    }
}

/// East's SVID as the agent serves it verifies under the upstream's root.
fn openssl_verifies(socket: &Path, root: &Path, dir: &Path) {
    let out = dir.join("east-svids");
    Cmd::meshid()
        .args(["agent", "api", "fetch", "--socket"])
        .args([socket])
        .args(["--write"])
        .args([&out])
        .run_ok();
    let served = pem_certs(&std::fs::read_to_string(out.join("svid.0.pem")).unwrap()).unwrap();
    let (leaf, chain) = served.split_first().unwrap();
    assert_eq!(chain.len(), 1, "leaf, then the downstream's intermediate");
    let (leaf_pem, chain_pem) = (out.join("leaf.pem"), out.join("chain.pem"));
    std::fs::write(&leaf_pem, to_pem(std::slice::from_ref(leaf))).unwrap();
    std::fs::write(&chain_pem, to_pem(chain)).unwrap();
    let verified = Cmd::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .args([root])
        .args(["-untrusted"])
        .args([&chain_pem, &leaf_pem])
        .run_ok();
    assert!(verified.trim().ends_with("leaf.pem: OK"), "{verified}");
}

/// west outbound → east inbound (allows only west) → backend.
fn proxies_call_each_other(west: &Mesh, east_socket: &Path) {
    let dir = west.tmp.path();
    let (backend_port, seen) = backend();
    let (east_in, west_out) = (free_port(), free_port());
    let policy = dir.join("east-policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "policies:\n  - name: west-only\n    action: ALLOW\n    rules:\n      \
             - from: [{{ source: {{ principals: [\"{}\"] }} }}]\n",
            west.spiffe_id
        ),
    )
    .unwrap();
    let proxy = |name: &str, body: String| {
        let file = dir.join(format!("{name}-proxy.yaml"));
        std::fs::write(&file, body).unwrap();
        Cmd::meshid()
            .args(["proxy", "run", "--config"])
            .args([&file])
            .spawn(&west.logs)
    };
    let mut east_proxy = proxy(
        "east",
        format!(
            "identity:\n  workload_api: {{ socket: {:?} }}\ninbound:\n  - {{ listen: \
             \"127.0.0.1:{east_in}\", forward_to: \"127.0.0.1:{backend_port}\", protocol: http }}\n\
             ops_listen: \"127.0.0.1:{}\"\npolicy: {:?}\nmode: enforce\n",
            east_socket.display().to_string(),
            free_port(),
            policy.display().to_string(),
        ),
    );
    let mut west_proxy = proxy(
        "west",
        format!(
            "identity:\n  workload_api: {{ socket: {:?} }}\noutbound:\n  - {{ listen: \
             \"127.0.0.1:{west_out}\", upstream: \"127.0.0.1:{east_in}\", server_id: \"{EAST}\", \
             protocol: http }}\nops_listen: \"127.0.0.1:{}\"\n",
            west.workload_socket().display().to_string(),
            free_port(),
        ),
    );
    let alive = |c: &mut Child, what: &str| assert!(c.is_running(), "{what} exited:\n{}", c.log());
    let (code, body) = eventually("GET from west through both proxies to east", READY, || {
        alive(&mut east_proxy, "east's meshid proxy");
        alive(&mut west_proxy, "west's meshid proxy");
        let r = http(west_out, "GET", "/across-cas");
        (r.0 == 200).then_some(r)
    });
    assert_eq!((code, body.as_str()), (200, "hello"));
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|h| h.starts_with("GET /across-cas ")),
        "the backend never saw the request"
    );
}
