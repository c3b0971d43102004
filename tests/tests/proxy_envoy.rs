//! Interop with a real Envoy, both directions, everything as real processes:
//! `meshid ca serve`, `meshid agent run`, `meshid proxy run` (as another
//! uid, under `setpriv`) and Envoy, which gets its certificate and trust
//! bundle from the same agent over SDS.
//!
//! (a) Envoy outbound (plain HTTP in, mTLS out, TLS 1.3, SAN pinned to the
//!     proxy's SPIFFE ID) → meshid inbound → backend. The proxy's policy
//!     sees Envoy's SPIFFE ID: `GET /hello` is allowed, `POST /admin` is
//!     denied with 403 and never reaches the backend.
//! (b) meshid outbound (`server_id` = Envoy's ID) → Envoy inbound from
//!     `examples/envoy/envoy.yaml` → backend, which learns the proxy's
//!     SPIFFE ID from Envoy's `x-forwarded-client-cert`. An outbound whose
//!     `server_id` names someone else refuses Envoy.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use meshid_tests::http::{backend, http};
use meshid_tests::{Child, Cmd, Envoy, Mesh, current_uid, eventually, free_port};

const TD: &str = "example.org";
const ENVOY_ID: &str = "spiffe://example.org/envoy";
const PROXY_ID: &str = "spiffe://example.org/meshid-proxy";
/// The uid our proxy runs as, so the agent tells it apart from Envoy (root).
const PROXY_UID: u32 = 10_103;
/// Start-up budget: debug builds on a loaded 2-core machine.
const READY: Duration = Duration::from_secs(45);

/// Writes `text` to `path`, readable by the proxy's uid.
fn write_public(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn envoy_and_meshid_proxy_talk_mtls_both_ways_with_sds_identities() {
    let Some(envoy_bin) = Envoy::from_env("the meshid proxy <-> Envoy interop test") else {
        return;
    };
    // --- the CA and the agent (Workload API and SDS on one socket), one
    // entry per workload. The proxy runs as PROXY_UID: it must reach its
    // config and the agent's socket through the temp dir (0755).
    let envoy_uid = current_uid();
    assert_ne!(envoy_uid, PROXY_UID);
    let mesh = Mesh::builder()
        .entry("/envoy", envoy_uid)
        .entry("/meshid-proxy", PROXY_UID)
        .shared_dir()
        .agent(|a| a.ops())
        .start();
    assert_eq!(mesh.spiffe_id, ENVOY_ID);
    let root = mesh.tmp.path();
    let logs = &mesh.logs;
    let wl = mesh.workload_socket().to_owned();

    // --- the backend, our proxy (as PROXY_UID) and Envoy (as us).
    let (backend_port, seen) = backend();
    let proxy_in = free_port();
    let proxy_out = free_port();
    let proxy_out_wrong = free_port();
    let envoy_in = free_port();
    let envoy_out = free_port();
    let envoy_admin = free_port();

    let policy = root.join("policy.yaml");
    write_public(
        &policy,
        &format!(
            "policies:\n\
             \x20 - name: envoy-reads-hello\n\
             \x20   action: ALLOW\n\
             \x20   rules:\n\
             \x20     - from: [{{ source: {{ principals: [\"{ENVOY_ID}\"] }} }}]\n\
             \x20       to: [{{ operation: {{ methods: [\"GET\"], paths: [\"/hello\"] }} }}]\n"
        ),
    );
    let proxy_yaml = root.join("proxy.yaml");
    write_public(
        &proxy_yaml,
        &format!(
            "identity:\n\
             \x20 workload_api: {{ socket: {wl:?} }}\n\
             inbound:\n\
             \x20 - {{ listen: \"127.0.0.1:{proxy_in}\", forward_to: \"127.0.0.1:{backend_port}\", protocol: http }}\n\
             outbound:\n\
             \x20 - {{ listen: \"127.0.0.1:{proxy_out}\", upstream: \"127.0.0.1:{envoy_in}\", server_id: \"{ENVOY_ID}\", protocol: http }}\n\
             \x20 - {{ listen: \"127.0.0.1:{proxy_out_wrong}\", upstream: \"127.0.0.1:{envoy_in}\", server_id: \"spiffe://{TD}/not-envoy\", protocol: http }}\n\
             ops_listen: \"127.0.0.1:{ops}\"\n\
             access_log: stdout\n\
             policy: {policy:?}\n\
             mode: enforce\n",
            wl = wl.display().to_string(),
            ops = free_port(),
            policy = policy.display().to_string(),
        ),
    );
    let mut proxy = Cmd::new("setpriv")
        .args([
            format!("--reuid={PROXY_UID}"),
            format!("--regid={PROXY_UID}"),
            "--clear-groups".into(),
            "--".into(),
        ])
        .args([meshid_tests::meshid_bin()])
        .args(["proxy", "run", "--config"])
        .args([&proxy_yaml])
        .dir(root)
        .spawn(logs);

    let envoy_yaml = root.join("envoy.yaml");
    std::fs::write(
        &envoy_yaml,
        meshid_tests::envoy::config_with(
            &[
                ("SDS_SOCKET", wl.display().to_string()),
                ("ADMIN_PORT", envoy_admin.to_string()),
                ("LISTEN_PORT", envoy_in.to_string()),
                ("BACKEND_PORT", backend_port.to_string()),
                ("TRUST_DOMAIN", TD.to_string()),
            ],
            &meshid_tests::envoy::outbound_listener(
                "outbound_to_meshid",
                envoy_out,
                "meshid_inbound",
            ),
            &meshid_tests::envoy::mtls_cluster("meshid_inbound", proxy_in, PROXY_ID, false),
        ),
    )
    .unwrap();
    let mut envoy = envoy_bin.spawn(&envoy_yaml, logs);

    let alive = |proxy: &mut Child, envoy: &mut Child| {
        assert!(proxy.is_running(), "meshid proxy exited:\n{}", proxy.log());
        assert!(envoy.is_running(), "Envoy exited:\n{}", envoy.log());
    };

    // (a) Envoy → meshid inbound → backend. Envoy's listeners warm until
    // SDS answered; the proxy needs its first SVID.
    let (code, body) = eventually(
        "GET /hello from Envoy through the meshid inbound",
        READY,
        || {
            alive(&mut proxy, &mut envoy);
            let r = http(envoy_out, "GET", "/hello");
            (r.0 == 200).then_some(r)
        },
    );
    assert_eq!((code, body.as_str()), (200, "hello"));
    let (code, _) = http(envoy_out, "POST", "/admin");
    assert_eq!(code, 403, "the policy allows Envoy only GET /hello");
    // Envoy's upstream TLS is left at its defaults (at most TLS 1.2), and
    // the meshid inbound accepts that.
    let (_, stats) = http(
        envoy_admin,
        "GET",
        "/stats?filter=meshid_inbound.ssl.versions",
    );
    assert!(
        stats.lines().any(
            |l| l.starts_with("cluster.meshid_inbound.ssl.versions.TLSv1.2: ")
                && !l.ends_with(": 0")
        ),
        "Envoy's default upstream TLS settings should negotiate TLS 1.2:\n{stats}"
    );
    eventually(
        "the proxy's access log to name Envoy's SPIFFE ID",
        READY,
        || proxy.log().contains(ENVOY_ID).then_some(()),
    );
    {
        let seen = seen.lock().unwrap();
        assert!(
            seen.iter().any(|h| h.starts_with("GET /hello ")),
            "{seen:?}"
        );
        assert!(
            !seen.iter().any(|h| h.starts_with("POST /admin")),
            "a denied request reached the backend: {seen:?}"
        );
    }

    // (b) meshid outbound → Envoy inbound → backend.
    seen.lock().unwrap().clear();
    let (code, body) = eventually(
        "GET /hello from the meshid outbound through Envoy",
        READY,
        || {
            alive(&mut proxy, &mut envoy);
            let r = http(proxy_out, "GET", "/from-meshid");
            (r.0 == 200).then_some(r)
        },
    );
    assert_eq!((code, body.as_str()), (200, "hello"));
    {
        let seen = seen.lock().unwrap();
        let head = seen
            .iter()
            .find(|h| h.starts_with("GET /from-meshid "))
            .unwrap_or_else(|| panic!("the backend never saw the request: {seen:?}"));
        let xfcc = head
            .lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with("x-forwarded-client-cert:")
            })
            .unwrap_or_else(|| panic!("Envoy set no x-forwarded-client-cert:\n{head}"));
        assert!(
            xfcc.contains(&format!("URI={PROXY_ID}")),
            "Envoy saw another client identity: {xfcc}"
        );
    }
    // An outbound that expects someone else refuses Envoy's certificate.
    let before = seen.lock().unwrap().len();
    let (code, _) = http(proxy_out_wrong, "GET", "/from-meshid");
    assert!(
        code == 0 || code >= 500,
        "an outbound pinned to another SPIFFE ID reached Envoy: {code}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        before,
        "the refused request reached the backend"
    );
    alive(&mut proxy, &mut envoy);
}
