//! Independent gRPC clients and hostile local users against the real
//! `meshid` CA and agent on their Unix sockets:
//!
//! 1. a CA and an agent (Workload API and SDS on separate sockets), with an
//!    entry for this test's uid and one for uid 10001;
//! 2. unmodified Python clients with no channel option — plain `grpcio` on
//!    the Workload API, SDS and the CA admin socket, and pyspiffe fetching
//!    an X.509-SVID, a JWT-SVID and both bundles — are all served, although
//!    gRPC C-core sends the socket path as `:authority`;
//! 3. with 10,000 hostile connections held open by this uid (half silent,
//!    half sending one byte a second), the per-user cap refuses the excess
//!    at once, a workload of another uid still gets its SVID promptly, and
//!    the hostile connections are closed after the handshake timeout.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meshid_tests::{Cmd, Mesh, current_uid, eventually};

/// The other workload's uid (its entry: `unix:uid:10001`).
const OTHER_UID: u32 = 10001;

/// A CA and an agent (SDS on its own socket, ops port) with entries
/// `/py` for this uid and `/other` for uid 10001; `agent_extra` is
/// appended to the agent's TOML. The temp dir is opened (0755) for uid
/// 10001; the agent makes its socket directory 0755 itself.
fn start(agent_extra: &str) -> Mesh {
    Mesh::builder()
        .entry("/py", current_uid())
        .entry("/other", OTHER_UID)
        .shared_dir()
        .agent(|a| a.sds_socket().ops())
        .agent_extra(agent_extra)
        .start()
}

/// The agent's `/metrics` text.
fn metrics(mesh: &Mesh) -> String {
    let port = mesh.agent.ops_port.unwrap_or_else(|| panic!("no ops port"));
    http_get(port, "/metrics")
}

/// Plain HTTP/1.1 GET on loopback; the body.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// The Python interpreter with grpcio and pyspiffe (`scripts/test` makes it).
fn python() -> PathBuf {
    std::env::var_os("MESHID_TEST_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv/bin/python"),
        PathBuf::from,
    )
}

/// Runs `tests/py/grpc_clients.py` with `args`; its one line of output.
fn py_client(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/grpc_clients.py");
    let out = Cmd::new(python())
        .args([script.as_os_str()])
        .args(args.iter().map(|a| a.as_ref()))
        .output();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !stdout.is_empty(),
        "python client failed ({}): {stdout}\n{}\n(needs grpcio and spiffe: run ./scripts/test \
         or `{} -m pip install grpcio protobuf spiffe`)",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        python().display()
    );
    stdout
}

/// The value of the first sample of `metric` whose line contains `labels`.
fn sample(metrics: &str, metric: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(metric) && l.contains(labels))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn unmodified_python_grpc_clients_are_served_on_every_unix_socket() {
    let mesh = start("");
    let sds_socket = mesh.agent.sds_socket.clone().unwrap();

    let out = py_client(&[&"workload-fetch", &mesh.agent.workload_socket]);
    assert!(out.starts_with("OK "), "grpcio FetchX509SVID: {out}");
    let out = py_client(&[&"sds-fetch", &sds_socket]);
    assert!(out.starts_with("OK "), "grpcio FetchSecrets: {out}");
    let out = py_client(&[&"admin-bundle", &mesh.ca.admin_socket]);
    assert!(out.starts_with("OK "), "grpcio Admin/GetBundle: {out}");

    let out = py_client(&[
        &"pyspiffe",
        &mesh.agent.workload_socket,
        &"spiffe://example.org/aud",
    ]);
    let json = out
        .strip_prefix("OK ")
        .unwrap_or_else(|| panic!("pyspiffe: {out}"));
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["x509_spiffe_id"], "spiffe://example.org/py", "{v}");
    assert_eq!(v["jwt_spiffe_id"], "spiffe://example.org/py", "{v}");
    assert_eq!(v["jwt_audience"][0], "spiffe://example.org/aud", "{v}");
    assert!(v["x509_chain_len"].as_u64() >= Some(1), "{v}");
    assert!(v["x509_bundle_roots"].as_u64() >= Some(1), "{v}");
    assert!(v["jwt_bundle_keys"].as_u64() >= Some(1), "{v}");

    let m = metrics(&mesh);
    assert!(
        sample(&m, "meshid_agent_uds_authority_rewritten", "workload_api") >= 2.0,
        "{m}"
    );
}

/// Hostile connections this test may hold: up to the 10,000, as
/// far as the file-descriptor limit (raised to its hard maximum) allows
/// with room for the rest of the test.
fn hostile_budget() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    let n = usize::try_from(hard.saturating_sub(1024)).unwrap_or(usize::MAX);
    n.min(10_000)
}

/// `meshid agent api fetch` as uid 10001; (succeeded, output, time taken).
fn fetch_as_other_user(socket: &Path) -> (bool, String, Duration) {
    let start = Instant::now();
    let out = Cmd::new("setpriv")
        .args([
            "--reuid",
            "10001",
            "--regid",
            "10001",
            "--clear-groups",
            "--",
        ])
        .args([meshid_tests::meshid_bin()])
        .args(["agent", "api", "fetch", "--socket"])
        .args([socket])
        .output();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text, start.elapsed())
}

#[test]
fn hostile_local_connections_neither_starve_other_users_nor_stay_open() {
    let hostile = hostile_budget();
    assert!(
        hostile >= 2_000,
        "the fd limit allows only {hostile} connections"
    );
    let per_uid = hostile * 6 / 10;
    let mesh = start(&format!(
        "listener_handshake_timeout = \"5s\"\nlistener_idle_timeout = \"5s\"\n\
         listener_max_connections = {}\nlistener_max_connections_per_uid = {per_uid}\n",
        hostile * 2
    ));

    // This uid opens `hostile` connections: half stay silent, half send
    // the HTTP/2 preface one byte a second and never finish it.
    let conns: Vec<std::os::unix::net::UnixStream> = (0..hostile)
        .map(|_| std::os::unix::net::UnixStream::connect(&mesh.agent.workload_socket).unwrap())
        .collect();
    let slow: Vec<_> = conns
        .iter()
        .skip(hostile / 2)
        .map(|c| c.try_clone().unwrap())
        .collect();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let slow_loris = std::thread::spawn(move || {
        use std::io::Write;
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        for b in preface.iter().cycle().take(120) {
            for mut c in &slow {
                c.set_nonblocking(true).unwrap();
                let _ = c.write(&[*b]);
            }
            if stop_rx.recv_timeout(Duration::from_secs(1)).is_ok() {
                return;
            }
        }
    });

    // Another user is served promptly all the same.
    let (ok, out, took) = fetch_as_other_user(&mesh.agent.workload_socket);
    assert!(ok, "uid {OTHER_UID} was not served: {out}");
    assert!(
        took < Duration::from_secs(20),
        "uid {OTHER_UID} waited {took:?}"
    );
    assert!(out.contains("spiffe://example.org/other"), "{out}");

    // Past the per-user cap connections were refused at once, and every
    // admitted hostile connection is closed by the handshake timeout.
    let m = metrics(&mesh);
    let refused = sample(
        &m,
        "meshid_agent_uds_connections_refused_total",
        "max_connections_per_uid",
    );
    assert!(
        refused >= 1.0,
        "nothing refused past the per-user cap:\n{m}"
    );
    eventually(
        "hostile connections closed",
        Duration::from_secs(60),
        || {
            let m = metrics(&mesh);
            (sample(&m, "meshid_agent_uds_connections_open", "workload_api") == 0.0).then_some(())
        },
    );
    let m = metrics(&mesh);
    let timed_out = sample(
        &m,
        "meshid_agent_uds_connections_timed_out_total",
        "handshake",
    );
    assert!(timed_out >= per_uid as f64, "{timed_out} timed out:\n{m}");
    let _ = stop_tx.send(());
    slow_loris.join().unwrap();

    // The client ends see the close too.
    use std::io::Read;
    let still_open = conns
        .iter()
        .filter(|c| {
            c.set_nonblocking(true).unwrap();
            let mut b = [0u8; 256];
            let mut r: &std::os::unix::net::UnixStream = c;
            loop {
                match r.read(&mut b) {
                    Ok(0) => return false,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
        })
        .count();
    assert_eq!(still_open, 0, "connections the agent did not close");
    drop(conns);

    let (ok, out, _) = fetch_as_other_user(&mesh.agent.workload_socket);
    assert!(ok, "uid {OTHER_UID} was not served after the attack: {out}");
}
