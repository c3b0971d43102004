//! `meshid healthcheck`, as a container probe runs it, against the real CA
//! and agent:
//!
//! 1. a CA and an agent (ops port on) with an entry for this test's uid;
//! 2. `--url` on the CA's and the agent's `/readyz` exits 0; on a path the
//!    ops endpoint does not serve, 1 with the server's answer on stderr;
//! 3. `--socket` on the agent's Workload API exits 0, for this uid (it
//!    gets bundles) and for a uid with no entry (the agent answers "no
//!    identity");
//! 4. a closed port, a missing socket and a server that never answers exit
//!    1 with the reason, within `--timeout`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use meshid_tests::{Cmd, Mesh, current_uid, free_port, meshid_bin};

/// A uid with no registration entry.
const NO_ENTRY_UID: &str = "10002";

fn healthcheck(args: &[&str]) -> Output {
    Cmd::meshid().args(["healthcheck"]).args(args).output()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_healthy(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(out), stderr(out));
    assert!(stdout(out).starts_with("healthy: "), "{}", stdout(out));
}

fn assert_unhealthy(out: &Output, reason: &str) {
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(out), stderr(out));
    assert!(
        stderr(out).contains(reason),
        "want {reason:?} in: {}",
        stderr(out)
    );
}

fn socket_as(uid: &str, socket: &Path) -> Output {
    Cmd::new("setpriv")
        .args(["--reuid", uid, "--regid", uid, "--clear-groups", "--"])
        .args([meshid_bin()])
        .args(["healthcheck", "--socket"])
        .args([socket])
        .output()
}

#[test]
fn healthcheck_passes_on_a_ready_ca_and_agent_and_fails_with_the_reason_otherwise() {
    let mesh = Mesh::builder()
        .entry("/workload", current_uid())
        .shared_dir()
        .agent(|a| a.ops())
        .start();
    let agent_ops = mesh.agent.ops_port.unwrap();
    let ca_ready = format!("http://127.0.0.1:{}/readyz", mesh.ca.ops_port);

    assert_healthy(&healthcheck(&["--url", &ca_ready]));
    assert_healthy(&healthcheck(&[
        "--url",
        &format!("http://127.0.0.1:{agent_ops}/readyz"),
    ]));
    let wrong = healthcheck(&[
        "--url",
        &format!("http://127.0.0.1:{}/ready", mesh.ca.ops_port),
    ]);
    assert_unhealthy(&wrong, "404 Not Found: try /healthz, /readyz or /metrics");

    let socket = mesh.workload_socket().to_str().unwrap().to_owned();
    let out = healthcheck(&["--socket", &format!("unix://{socket}")]);
    assert_healthy(&out);
    assert!(stdout(&out).contains("trust bundle"), "{}", stdout(&out));
    let out = socket_as(NO_ENTRY_UID, mesh.workload_socket());
    assert_healthy(&out);
    assert!(
        stdout(&out).contains("no identity for this caller"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn healthcheck_fails_on_a_closed_port_a_missing_socket_and_a_silent_server() {
    let closed = format!("http://127.0.0.1:{}/readyz", free_port());
    assert_unhealthy(&healthcheck(&["--url", &closed]), "cannot connect to");

    let dir = meshid_tests::tempdir();
    let missing = dir.path().join("agent.sock");
    let out = healthcheck(&["--socket", missing.to_str().unwrap()]);
    assert_unhealthy(&out, "no Unix socket at");

    // Accepts (the kernel's backlog does) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/readyz", silent.local_addr().unwrap());
    let start = Instant::now();
    let out = healthcheck(&["--url", &url, "--timeout", "500ms"]);
    assert_unhealthy(&out, "did not answer within 500ms");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );

    let usage = healthcheck(&[]);
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));
}
