//! `meshid up`: the README's first command. Starts the whole system, makes
//! the allowed and the denied call, serves them by hand too, and stops
//! cleanly on SIGTERM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use meshid_tests::{Child, Cmd, eventually, tempdir};

/// Start-up budget: generous for a debug build on a loaded CI machine.
const READY: Duration = Duration::from_secs(120);

/// Waits for the "ready" line; returns the output so far.
fn wait_ready(up: &mut Child) -> String {
    eventually("meshid up to print `ready`", READY, || {
        let log = up.log();
        if log.contains("meshid up: ready") {
            return Some(log);
        }
        assert!(
            up.is_running(),
            "meshid up exited before it was ready:\n{log}"
        );
        None
    })
}

/// The value after `key` on the line that contains it, up to whitespace.
fn after<'a>(out: &'a str, key: &str) -> &'a str {
    let i = out
        .find(key)
        .unwrap_or_else(|| panic!("{key:?} not in the output:\n{out}"));
    out[i + key.len()..]
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("nothing after {key:?}:\n{out}"))
}

fn line_with<'a>(out: &'a str, needle: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}:\n{out}"))
}

/// `(name, pid)` of every child from the `children:` line.
fn children(out: &str) -> Vec<(String, u32)> {
    let line = line_with(out, "children: ");
    let list = &line[line.find("children: ").unwrap_or(0) + "children: ".len()..];
    list.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("bad {kv:?}"));
            (
                k.to_owned(),
                v.parse().unwrap_or_else(|_| panic!("bad pid {v:?}")),
            )
        })
        .collect()
}

fn curl_status(args: &[&str]) -> String {
    let mut all = vec![
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
    ];
    all.extend_from_slice(args);
    Cmd::new("curl").args(all).run_ok()
}

/// A process that is gone (or, after pid reuse, is no longer a meshid).
fn gone(pid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    !String::from_utf8_lossy(&cmdline).contains("meshid")
}

fn start(args: &[&str], logs: &Path) -> Child {
    let mut all = vec!["up"];
    all.extend_from_slice(args);
    Cmd::meshid().args(all).spawn(logs)
}

fn stop(up: &mut Child, out: &str) -> String {
    let status = up.terminate(Duration::from_secs(60));
    let log = up.log();
    assert!(
        status.success(),
        "meshid up did not exit cleanly ({status}):\n{log}"
    );
    assert!(log.contains("stopped everything cleanly"), "{log}");
    for (name, pid) in children(out) {
        assert!(
            gone(pid),
            "{name} (pid {pid}) still runs after meshid up stopped"
        );
    }
    log
}

#[test]
fn up_allows_hello_denies_admin_and_stops_cleanly() {
    let data = tempdir();
    let logs = tempdir();
    let mut up = start(
        &["--data-dir", &data.path().display().to_string()],
        logs.path(),
    );
    let out = wait_ready(&mut up);

    // The calls `up` made itself.
    let allowed = line_with(&out, "allowed  GET /hello");
    assert!(
        allowed.contains("200") && allowed.contains("hello from service-b"),
        "{out}"
    );
    let denied = line_with(&out, "denied   POST /admin");
    assert!(denied.contains("403"), "{out}");
    assert!(!out.contains("UNEXPECTED"), "{out}");
    // Both proxies presented verified SVIDs with their own identities.
    assert!(
        out.contains("presents spiffe://example.org/demo/service-a"),
        "{out}"
    );
    assert!(
        out.contains("presents spiffe://example.org/demo/service-b"),
        "{out}"
    );
    let kids = children(&out);
    let names: Vec<&str> = kids.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ca", "agent", "proxy-a", "proxy-b"], "{out}");

    // The same calls by hand, through the printed outbound port.
    let hello = after(&out, "curl -i ");
    assert!(hello.ends_with("/hello"), "{hello}");
    let admin = hello.replace("/hello", "/admin");
    assert_eq!(curl_status(&[hello]), "200");
    assert_eq!(curl_status(&["-X", "POST", &admin]), "403");

    stop(&mut up, &out);
    // --data-dir is kept, with the configs `up` wrote.
    assert!(data.path().join("ca.toml").is_file());
    assert!(data.path().join("logs").join("ca.log").is_file());
}

#[test]
fn up_without_data_dir_removes_its_temporary_directory() {
    let logs = tempdir();
    let mut up = start(&[], logs.path());
    let out = wait_ready(&mut up);
    let dir = PathBuf::from(after(&out, "data dir"));
    assert!(dir.is_dir(), "{} should exist while up runs", dir.display());
    assert!(
        line_with(&out, "data dir").contains("removed on exit"),
        "{out}"
    );
    stop(&mut up, &out);
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

#[test]
fn up_on_the_openssl_backend_runs_every_child_on_it() {
    meshid_tests::bin::require_openssl_backend();
    let data = tempdir();
    let logs = tempdir();
    let mut up = start(
        &[
            "--tls-backend",
            "openssl",
            "--data-dir",
            &data.path().display().to_string(),
        ],
        logs.path(),
    );
    let out = wait_ready(&mut up);
    assert!(
        line_with(&out, "TLS backend").contains("openssl (CA, agent and both proxies)"),
        "{out}"
    );
    let allowed = line_with(&out, "allowed  GET /hello");
    assert!(
        allowed.contains("200") && allowed.contains("hello from service-b"),
        "{out}"
    );
    assert!(
        line_with(&out, "denied   POST /admin").contains("403"),
        "{out}"
    );
    assert!(!out.contains("UNEXPECTED"), "{out}");
    assert!(
        out.contains("presents spiffe://example.org/demo/service-b"),
        "{out}"
    );
    // Every child was told, on its command line and in its config.
    for (name, pid) in children(&out) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        assert!(
            args.windows(2)
                .any(|w| w == [&b"--tls-backend"[..], &b"openssl"[..]]),
            "{name} runs without --tls-backend openssl: {:?}",
            String::from_utf8_lossy(&cmdline)
        );
    }
    for file in ["ca.toml", "agent.toml"] {
        let text = std::fs::read_to_string(data.path().join(file)).unwrap_or_default();
        assert!(
            text.contains("tls_backend = \"openssl\""),
            "{file}:\n{text}"
        );
    }
    for file in ["proxy-service-a.yaml", "proxy-service-b.yaml"] {
        let text = std::fs::read_to_string(data.path().join(file)).unwrap_or_default();
        assert!(text.contains("tls_backend: openssl"), "{file}:\n{text}");
    }
    let hello = after(&out, "curl -i ");
    assert_eq!(curl_status(&[hello]), "200");
    stop(&mut up, &out);
}
