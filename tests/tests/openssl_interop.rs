//! The OpenSSL TLS backend (`tls_backend: openssl`) against every other
//! peer, end to end with real processes on one mesh's SVIDs (the binary
//! under test must be built with `--features openssl`):
//!
//! - meshid proxy on rustls ↔ meshid proxy on OpenSSL, both directions,
//!   over HTTP/1.1, HTTP/2 (ALPN h2 between the proxies) and opaque TCP; an
//!   outbound on OpenSSL pinned to another SPIFFE ID refuses the peer with
//!   the same `peer_id_mismatch` as on rustls.
//! - Envoy (SDS from the agent) → OpenSSL inbound, pooled and one handshake
//!   per request, and OpenSSL outbound → Envoy's inbound.
//! - `curl` and `openssl s_client` with the SVID files the agent writes
//!   against the OpenSSL inbound: TLS 1.3 and 1.2, ALPN, the server's chain
//!   verified, no client certificate refused (and counted by reason).
//! - `[tls] algorithms = "fips"` on either backend: a client offering
//!   X25519 and ChaCha20 first gets P-256 and AES-GCM; one offering only
//!   X25519 or only ChaCha20 is refused.
//! - `fips = true` without a FIPS provider: `meshid proxy run` and
//!   `meshid ca serve` exit non-zero with the reason before listening.
//! - The whole mesh (CA, agent, proxies) on OpenSSL.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use meshid_identity::tls::TlsBackend;
use meshid_tests::bin::require_openssl_backend;
use meshid_tests::http::{Seen, backend, http};
use meshid_tests::net::{echo, echo_once};
use meshid_tests::proxy::{Listener, TestProxy, tls_backend};
use meshid_tests::{Child, Cmd, Mesh, Start, TestCa, Traffic, eventually, free_port, tempdir};

/// Start-up budget: debug builds on a loaded 2-core machine.
const READY: Duration = Duration::from_secs(60);
/// How long a refused start may take to exit.
const EXIT: Duration = Duration::from_secs(30);
/// Handshakes completed on an inbound listener.
const INBOUND_HANDSHAKES: &str = "meshid_proxy_tls_handshakes_total{direction=\"inbound\"}";

/// The SVID files `meshid agent api fetch --write` leaves in a directory.
struct SvidFiles {
    cert: PathBuf,
    key: PathBuf,
    bundle: PathBuf,
}

impl SvidFiles {
    /// Writes the mesh agent's SVID for this process into `<tmp>/<name>`.
    fn fetch(mesh: &Mesh, name: &str) -> Self {
        let dir = mesh.tmp.path().join(name);
        assert!(
            mesh.agent.write_svids(&dir),
            "meshid agent api fetch --write failed"
        );
        Self {
            cert: dir.join("svid.0.pem"),
            key: dir.join("svid.0.key"),
            bundle: dir.join("bundle.0.pem"),
        }
    }
}

/// `openssl s_client` against `127.0.0.1:port` with `args` (stdin closed:
/// it handshakes and quits); (exit ok, stdout + stderr).
fn s_client(port: u16, files: Option<&SvidFiles>, args: &[&str]) -> (bool, String) {
    let mut c = Command::new("openssl");
    c.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-brief",
    ])
    .args(args);
    if let Some(f) = files {
        c.arg("-CAfile").arg(&f.bundle);
        c.arg("-cert").arg(&f.cert).arg("-key").arg(&f.key);
    }
    let out = c.stdin(std::process::Stdio::null()).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (
        out.status.success() && text.contains("CONNECTION ESTABLISHED"),
        text,
    )
}

/// The protocol `127.0.0.1:port` picks when s_client offers only
/// `protocol` by ALPN: `Some("h2")`, or `None` when the handshake failed
/// (no protocol in common is refused, as on rustls).
fn alpn(port: u16, files: &SvidFiles, protocol: &str) -> Option<String> {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-alpn", protocol, "-cert"])
        .args([&files.cert])
        .args(["-key"])
        .args([&files.key])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("ALPN protocol: "))
        .map(str::to_owned)
}

/// `curl` with `args`, printing the body then `<status> <http version>`;
/// (exit ok, stdout + stderr).
fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "-",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// curl with the SVID files (the server's chain is not checked by curl:
/// an SVID has no DNS name; s_client verifies it below).
fn curl_svid(files: &SvidFiles, port: u16, path: &str, version: &str) -> (bool, String) {
    let url = format!("https://127.0.0.1:{port}{path}");
    let (cert, key) = (
        files.cert.display().to_string(),
        files.key.display().to_string(),
    );
    curl(&["-k", version, "--cert", &cert, "--key", &key, &url])
}

/// Whether the backend received a request for `path`.
fn reached(seen: &Seen, path: &str) -> bool {
    let prefix = format!("GET {path} ");
    seen.lock().unwrap().iter().any(|h| h.starts_with(&prefix))
}

/// Waits until the proxy's access log has a line with every one of `parts`.
fn wait_for_log(proxy: &TestProxy, parts: &[&str]) {
    eventually(&format!("an access log line with {parts:?}"), READY, || {
        proxy
            .child
            .log()
            .lines()
            .any(|l| parts.iter().all(|p| l.contains(p)))
            .then_some(())
    });
}

/// Panics with its log if `proxy` exited.
fn assert_running(name: &str, proxy: &mut TestProxy) {
    assert!(
        proxy.child.is_running(),
        "the {name} proxy exited:\n{}",
        proxy.child.log()
    );
}

/// A proxy with one HTTP inbound on `port` to `forward_to`, `extra` in its
/// config (e.g. [`tls_backend`]).
fn inbound_proxy(mesh: &Mesh, name: &str, port: u16, forward_to: u16, extra: &str) -> TestProxy {
    TestProxy::start_with(
        mesh.tmp.path(),
        &mesh.logs,
        name,
        mesh.workload_socket(),
        &[Listener::Inbound { port, forward_to }],
        extra,
    )
}

/// Waits until `port` completes a TLS handshake with the SVID files (the
/// proxy has its first SVID).
fn wait_for_tls(proxy: &mut TestProxy, port: u16, files: &SvidFiles) {
    eventually(
        &format!("a TLS handshake with 127.0.0.1:{port}"),
        READY,
        || {
            assert_running("inbound", proxy);
            s_client(port, Some(files), &[]).0.then_some(())
        },
    );
}

/// A [`Child`] that must exit on its own, unsuccessfully, within [`EXIT`];
/// its output.
fn refused(mut child: Child, what: &str) -> String {
    let status = eventually(&format!("{what} to exit"), EXIT, || child.exit_status());
    let log = child.log();
    assert!(!status.success(), "{what} exited successfully:\n{log}");
    log
}

/// True when this machine's OpenSSL has a FIPS provider (`meshid version`);
/// the refusal tests then cannot run.
fn fips_provider_available() -> bool {
    Cmd::meshid()
        .args(["version"])
        .run_ok()
        .contains("fips provider: available")
}

#[test]
fn rustls_and_openssl_proxies_talk_both_ways_over_http1_h2_and_tcp() {
    require_openssl_backend();
    let mesh = Mesh::start("/workload");
    let (backend_port, seen) = backend();
    let echo_port = echo();
    let id = mesh.spiffe_id.clone();
    // Ports of each proxy: HTTP inbound, TCP inbound, HTTP outbound, TCP
    // outbound, HTTP outbound pinned to another SPIFFE ID.
    let ports = |_| [(); 5].map(|_| free_port());
    let [r, o] = [0, 1].map(ports);
    let start = |name: &str, backend: TlsBackend, me: [u16; 5], peer: [u16; 5]| {
        TestProxy::start_with(
            mesh.tmp.path(),
            &mesh.logs,
            name,
            mesh.workload_socket(),
            &[
                Listener::Inbound {
                    port: me[0],
                    forward_to: backend_port,
                },
                Listener::InboundTcp {
                    port: me[1],
                    forward_to: echo_port,
                },
                Listener::Outbound {
                    port: me[2],
                    upstream: peer[0],
                    server_id: id.clone(),
                    pool: true,
                },
                Listener::OutboundTcp {
                    port: me[3],
                    upstream: peer[1],
                    server_id: id.clone(),
                },
                Listener::Outbound {
                    port: me[4],
                    upstream: peer[0],
                    server_id: "spiffe://example.org/someone-else".into(),
                    pool: true,
                },
            ],
            &tls_backend(backend),
        )
    };
    let mut rustls = start("rustls", TlsBackend::Rustls, r, o);
    let mut openssl = start("openssl", TlsBackend::Openssl, o, r);

    for (from, to, out, callee) in [
        ("rustls", "openssl", r, &openssl),
        ("openssl", "rustls", o, &rustls),
    ] {
        // HTTP/1.1; the first request waits for both proxies' SVIDs.
        let h1 = format!("/h1-from-{from}");
        let (code, body) = eventually(&format!("GET {h1} from {from} to {to}"), READY, || {
            let r = http(out[2], "GET", &h1);
            (r.0 == 200).then_some(r)
        });
        assert_eq!((code, body.as_str()), (200, "hello"));
        assert!(reached(&seen, &h1));
        wait_for_log(callee, &["\"direction\":\"inbound\"", &h1, "HTTP/1.1", &id]);

        // HTTP/2 from the application: h2 over mTLS between the proxies.
        let h2 = format!("/h2-from-{from}");
        let (ok, out_text) = curl(&[
            "--http2-prior-knowledge",
            &format!("http://127.0.0.1:{}{h2}", out[2]),
        ]);
        assert!(
            ok && out_text.ends_with("hello\n200 2"),
            "h2 {from} -> {to}: {out_text}"
        );
        assert!(reached(&seen, &h2));
        wait_for_log(
            callee,
            &[
                "\"direction\":\"inbound\"",
                &h2,
                "\"http_version\":\"HTTP/2\"",
            ],
        );

        // Opaque TCP.
        let data = format!("tcp bytes from {from} to {to}\n").repeat(100);
        assert_eq!(
            String::from_utf8_lossy(&echo_once(out[3], data.as_bytes())),
            data,
            "TCP {from} -> {to}"
        );

        // The peer presents the mesh's SVID, not the ID this outbound pins.
        let (_, refused) = curl(&["-i", &format!("http://127.0.0.1:{}/wrong-id", out[4])]);
        assert!(
            refused.contains("502") && refused.contains("x-meshid-error: peer_id_mismatch"),
            "{from} outbound pinned to another ID: {refused}"
        );
        assert!(!reached(&seen, "/wrong-id"));
    }
    for (name, proxy) in [("rustls", &mut rustls), ("openssl", &mut openssl)] {
        assert_running(name, proxy);
        assert!(
            proxy.metric(INBOUND_HANDSHAKES) >= 3.0,
            "{name}: inbound handshakes counted"
        );
    }
}

#[test]
fn envoy_over_sds_and_openssl_proxies_talk_both_ways() {
    require_openssl_backend();
    let mesh = Mesh::start("/workload");
    // Envoy → OpenSSL inbound (pooled and per request), OpenSSL outbound →
    // OpenSSL inbound; every target has answered once it returns.
    let mut traffic = Traffic::start_on(
        &mesh,
        "the Envoy <-> OpenSSL proxy interop test",
        TlsBackend::Openssl,
    );
    let Some(envoy_in) = traffic.envoy_inbound_port else {
        return;
    };
    for t in traffic.targets().to_vec() {
        for i in 0..5 {
            let (code, body) = http(t.port, "GET", &format!("/load/{}/{i}", t.name));
            assert_eq!((code, body.as_str()), (200, "hello"), "through {}", t.name);
        }
    }
    wait_for_log(
        &traffic.inbound,
        &[
            "\"direction\":\"inbound\"",
            "/load/envoy-per-request/4",
            &mesh.spiffe_id,
        ],
    );

    // OpenSSL outbound → Envoy's own inbound (examples/envoy/envoy.yaml),
    // which forwards to the same backend with the client's SPIFFE ID.
    let out = free_port();
    let mut proxy = TestProxy::start_with(
        mesh.tmp.path(),
        &mesh.logs,
        "to-envoy",
        mesh.workload_socket(),
        &[Listener::Outbound {
            port: out,
            upstream: envoy_in,
            server_id: mesh.spiffe_id.clone(),
            pool: true,
        }],
        &tls_backend(TlsBackend::Openssl),
    );
    let (code, body) = eventually("GET through the OpenSSL outbound to Envoy", READY, || {
        assert_running("to-envoy", &mut proxy);
        let r = http(out, "GET", "/from-openssl");
        (r.0 == 200).then_some(r)
    });
    assert_eq!((code, body.as_str()), (200, "hello"));
    {
        let seen = traffic.seen.lock().unwrap();
        let head = seen
            .iter()
            .find(|h| h.starts_with("GET /from-openssl "))
            .unwrap_or_else(|| panic!("the backend never saw the request: {seen:?}"));
        let xfcc = head
            .lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with("x-forwarded-client-cert:")
            })
            .unwrap_or_else(|| panic!("Envoy set no x-forwarded-client-cert:\n{head}"));
        assert!(xfcc.contains(&format!("URI={}", mesh.spiffe_id)), "{xfcc}");
    }
    traffic.assert_running();
}

#[test]
fn curl_and_s_client_with_the_agents_svid_files_against_the_openssl_inbound() {
    require_openssl_backend();
    let mesh = Mesh::start("/workload");
    let (backend_port, seen) = backend();
    let port = free_port();
    let mut proxy = inbound_proxy(
        &mesh,
        "inbound",
        port,
        backend_port,
        &tls_backend(TlsBackend::Openssl),
    );
    let files = SvidFiles::fetch(&mesh, "svid");
    wait_for_tls(&mut proxy, port, &files);

    // curl: HTTP/1.1 and HTTP/2 (ALPN) with the client SVID.
    let (ok, out) = curl_svid(&files, port, "/curl-h1", "--http1.1");
    assert!(
        ok && out.ends_with("hello\n200 1.1"),
        "curl --http1.1: {out}"
    );
    let (ok, out) = curl_svid(&files, port, "/curl-h2", "--http2");
    assert!(ok && out.ends_with("hello\n200 2"), "curl --http2: {out}");
    assert!(reached(&seen, "/curl-h1") && reached(&seen, "/curl-h2"));
    wait_for_log(
        &proxy,
        &["/curl-h2", "\"http_version\":\"HTTP/2\"", &mesh.spiffe_id],
    );

    // No client certificate: refused, never forwarded, counted by reason.
    let (ok, out) = curl(&["-k", &format!("https://127.0.0.1:{port}/no-cert")]);
    assert!(
        !ok && !out.contains("hello"),
        "curl without a client SVID: {out}"
    );
    assert!(!reached(&seen, "/no-cert"));
    eventually("the refusal counted as no_client_cert", READY, || {
        (proxy.metric(
            "meshid_proxy_tls_handshake_errors_total{direction=\"inbound\",reason=\"no_client_cert\"}",
        ) >= 1.0)
            .then_some(())
    });

    // s_client verifies the served chain against the bundle: TLS 1.3 by
    // default, TLS 1.2 when asked (min_version 1.2), ALPN h2 and http/1.1.
    for (args, want) in [
        (
            &[][..],
            &["Protocol version: TLSv1.3", "Verification: OK"][..],
        ),
        (
            &["-tls1_2"],
            &["Protocol version: TLSv1.2", "Verification: OK"],
        ),
        // The default algorithms keep X25519 first, as rustls does.
        (&["-groups", "X25519:P-256"], &["Server Temp Key: X25519"]),
    ] {
        let mut all = vec!["-verify_return_error"];
        all.extend_from_slice(args);
        let (ok, out) = s_client(port, Some(&files), &all);
        assert!(ok, "s_client {args:?}: {out}");
        for w in want {
            assert!(out.contains(w), "s_client {args:?}: no {w:?} in\n{out}");
        }
    }
    // ALPN: h2 and http/1.1 offered alone are each chosen; nothing in
    // common fails the handshake, counted as no_alpn.
    assert_eq!(alpn(port, &files, "h2").as_deref(), Some("h2"));
    assert_eq!(alpn(port, &files, "http/1.1").as_deref(), Some("http/1.1"));
    assert_eq!(
        alpn(port, &files, "spdy/3"),
        None,
        "no ALPN in common must fail"
    );
    eventually("the ALPN refusal counted as no_alpn", READY, || {
        (proxy.metric(
            "meshid_proxy_tls_handshake_errors_total{direction=\"inbound\",reason=\"no_alpn\"}",
        ) >= 1.0)
            .then_some(())
    });
    // A client trusting other roots (the system's) refuses the chain.
    let (ok, out) = s_client(port, None, &["-verify_return_error"]);
    assert!(
        !ok,
        "s_client verified the SVID against the system roots: {out}"
    );
    assert_running("inbound", &mut proxy);
}

#[test]
fn fips_algorithms_negotiate_p256_and_aes_gcm_on_both_backends_and_refuse_x25519_or_chacha_only() {
    require_openssl_backend();
    let mesh = Mesh::start("/workload");
    let (backend_port, _seen) = backend();
    let files = SvidFiles::fetch(&mesh, "svid");
    const CHACHA13: &str = "TLS_CHACHA20_POLY1305_SHA256";
    const CHACHA12: &str = "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
    for backend in [TlsBackend::Openssl, TlsBackend::Rustls] {
        let name = format!("fips-{}", backend.as_str());
        let port = free_port();
        let extra = tls_backend(backend) + "tls:\n  algorithms: fips\n";
        let mut proxy = inbound_proxy(&mesh, &name, port, backend_port, &extra);
        wait_for_tls(&mut proxy, port, &files);

        // X25519 and ChaCha20 offered first: P-256 and AES-GCM chosen.
        let chacha_first_13 = format!("{CHACHA13}:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384");
        let chacha_first_12 =
            format!("{CHACHA12}:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256");
        for (args, cipher) in [
            (
                vec![
                    "-tls1_3",
                    "-groups",
                    "X25519:P-256",
                    "-ciphersuites",
                    &chacha_first_13,
                ],
                "TLS_AES_128_GCM_SHA256",
            ),
            (
                vec![
                    "-tls1_2",
                    "-groups",
                    "X25519:P-256",
                    "-cipher",
                    &chacha_first_12,
                ],
                "AES128-GCM-SHA256",
            ),
        ] {
            let (ok, out) = s_client(port, Some(&files), &args);
            assert!(ok, "{name}: s_client {args:?}: {out}");
            assert!(
                out.contains("Server Temp Key: ECDH, prime256v1"),
                "{name}: {args:?} not P-256:\n{out}"
            );
            let suite = out
                .lines()
                .find(|l| l.starts_with("Ciphersuite: "))
                .unwrap_or_default();
            assert!(
                suite.contains(cipher),
                "{name}: {args:?} negotiated {suite:?}:\n{out}"
            );
        }
        // Only what FIPS does not approve: refused in the handshake.
        for args in [
            vec!["-tls1_3", "-groups", "X25519"],
            vec!["-tls1_3", "-ciphersuites", CHACHA13],
            vec!["-tls1_2", "-groups", "X25519"],
            vec!["-tls1_2", "-cipher", CHACHA12],
        ] {
            let (ok, out) = s_client(port, Some(&files), &args);
            assert!(!ok, "{name}: s_client {args:?} was accepted:\n{out}");
        }
        assert_running(&name, &mut proxy);
    }
}

#[test]
fn fips_true_without_a_fips_provider_is_refused_before_listening() {
    require_openssl_backend();
    if fips_provider_available() {
        eprintln!(
            "\n!!! SKIPPING the fips = true refusal test: this OpenSSL has a FIPS provider !!!\n"
        );
        return;
    }
    let dir = tempdir();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let port = free_port();
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "identity:\n  workload_api: {{ socket: {:?} }}\n\
             inbound:\n  - {{ listen: \"127.0.0.1:{port}\", forward_to: \"127.0.0.1:{}\" }}\n\
             tls_backend: openssl\nfips: true\n",
            dir.path().join("agent.sock").display().to_string(),
            free_port(),
        ),
    )
    .unwrap();
    let want = |log: &str, who: &str| {
        assert!(
            log.contains("fips = true, but OpenSSL") && log.contains("has no \"fips\" provider"),
            "{who} did not name the missing FIPS provider:\n{log}"
        );
    };

    let proxy = Cmd::meshid()
        .args(["proxy", "run", "--config"])
        .args([&config])
        .spawn(&logs);
    want(
        &refused(proxy, "meshid proxy run with fips = true"),
        "meshid proxy run",
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the refused proxy listened"
    );
    // --tls-backend overrides the file: a rustls proxy config validates
    // as openssl; a CA config asking for fips on openssl is refused when
    // the flag says rustls.
    let rustls_config = dir.path().join("proxy-rustls.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &rustls_config,
        text.replace(
            "tls_backend: openssl\nfips: true\n",
            "tls_backend: rustls\n",
        ),
    )
    .unwrap();
    let out = Cmd::meshid()
        .args(["proxy", "validate", "--tls-backend", "openssl", "--config"])
        .args([&rustls_config])
        .run_ok();
    assert!(
        out.contains("tls backend   openssl; algorithms default"),
        "{out}"
    );
    let ca_config = dir.path().join("ca-fips.toml");
    std::fs::write(&ca_config, "tls_backend = \"openssl\"\nfips = true\n").unwrap();
    let out = Cmd::meshid()
        .args(["ca", "validate", "--trust-domain", "example.org"])
        .args(["--tls-backend", "rustls", "--data-dir"])
        .args([dir.path().join("ca-validate")])
        .args(["--config"])
        .args([&ca_config])
        .output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "fips on rustls validated");
    assert!(
        err.contains("fips = true needs tls_backend = \"openssl\""),
        "{err}"
    );

    match TestCa::builder(dir.path().join("ca"), &logs)
        .tls_backend(TlsBackend::Openssl)
        .config("fips = true\n")
        .try_start()
    {
        Start::Running(ca) => panic!(
            "meshid ca serve started with fips = true:\n{}",
            ca.child.log()
        ),
        Start::Exited { status, child } => {
            assert!(!status.success());
            want(&child.log(), "meshid ca serve");
        }
    }
}

#[test]
fn a_mesh_entirely_on_openssl_issues_svids_and_carries_mtls() {
    require_openssl_backend();
    // CA node API, agent client and both proxies on OpenSSL: the agent
    // attests and gets this process's SVID through the OpenSSL node API.
    let mesh = Mesh::builder().tls_backend(TlsBackend::Openssl).start();
    let (backend_port, seen) = backend();
    let (inbound, outbound) = (free_port(), free_port());
    let extra = tls_backend(TlsBackend::Openssl);
    let mut server = inbound_proxy(&mesh, "inbound", inbound, backend_port, &extra);
    let mut client = TestProxy::start_with(
        mesh.tmp.path(),
        &mesh.logs,
        "outbound",
        mesh.workload_socket(),
        &[Listener::Outbound {
            port: outbound,
            upstream: inbound,
            server_id: mesh.spiffe_id.clone(),
            pool: false,
        }],
        &extra,
    );
    let (code, body) = eventually("GET through two OpenSSL proxies", READY, || {
        assert_running("inbound", &mut server);
        assert_running("outbound", &mut client);
        let r = http(outbound, "GET", "/all-openssl");
        (r.0 == 200).then_some(r)
    });
    assert_eq!((code, body.as_str()), (200, "hello"));
    assert!(reached(&seen, "/all-openssl"));

    // The SVID the OpenSSL-signing CA issued verifies with openssl, and the
    // CA's node API serves a chain to the same bundle.
    let files = SvidFiles::fetch(&mesh, "svid");
    let out = Cmd::new("openssl")
        .args(["verify", "-CAfile"])
        .args([&files.bundle])
        .args([&files.cert])
        .run_ok();
    assert!(out.contains(": OK"), "{out}");
    let bundle = files.bundle.display().to_string();
    let (ok, out) = s_client(
        mesh.ca.node_port,
        None,
        &["-verify_return_error", "-CAfile", &bundle, "-tls1_3"],
    );
    assert!(
        ok && out.contains("Verification: OK"),
        "the CA's node API: {out}"
    );
    assert!(mesh.ca.signatures() >= 1, "the CA counted its signatures");
}
