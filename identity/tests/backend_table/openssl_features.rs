//! The OpenSSL backend's negotiation: FIPS algorithm lists (seen by the
//! `openssl s_client` CLI, which can offer exactly what a test needs),
//! ALPN, the TLS 1.2 floor, optional and required client certificates,
//! and session resumption with client certificates.

use std::process::Stdio;
use std::time::Duration;

use meshid_identity::openssl::{ClientAuth, ContextOptions, TlsMin};
use meshid_identity::tls::{Algorithms, PeerMatch};
use tokio::net::TcpListener;

use crate::support::{
    BOTH, Backend, Client, Outcome, bundles, check, client, id, intermediate, root, run,
    run_abrupt, rustls_tls12_client, serve, server, svid,
};

struct Pki {
    set: std::sync::Arc<meshid_identity::BundleSet>,
    server: crate::support::Svid,
    client: crate::support::Svid,
}

/// Server and client SVIDs under an intermediate (leaf + intermediate
/// presented, the bundle holding the root only).
fn pki() -> Pki {
    let root = root("example.org", "example.org root");
    let inter = intermediate(&root, "example.org", "example.org intermediate");
    Pki {
        set: bundles(&[("example.org", &root)]),
        server: svid(&inter, "spiffe://example.org/server", &[&inter]),
        client: svid(&inter, "spiffe://example.org/client", &[&inter]),
    }
}

fn opts(f: impl FnOnce(&mut ContextOptions)) -> ContextOptions {
    let mut o = ContextOptions {
        resumption: false,
        ..ContextOptions::default()
    };
    f(&mut o);
    o
}

/// `openssl s_client` with `args` against an OpenSSL server built with
/// `algorithms` (client certificates optional); its output and the
/// server's outcome.
async fn s_client(algorithms: Algorithms, args: &[&str]) -> (String, Outcome) {
    let p = pki();
    let srv = server(
        Backend::Openssl,
        &p.server,
        &p.set,
        PeerMatch::Any,
        &opts(|o| o.algorithms = algorithms),
        ClientAuth::Optional,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let cli = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect", &addr, "-brief"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let (out, outcome) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(cli, serve(&srv, &listener))
    })
    .await
    .expect("s_client finished");
    let out = out.expect("run openssl s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text, outcome)
}

#[tokio::test]
async fn fips_lists_negotiate_p256_and_aes_gcm_and_refuse_x25519_or_chacha_only() {
    // X25519 offered first: the FIPS server asks again for P-256.
    let (text, outcome) = s_client(Algorithms::Fips, &["-groups", "X25519:P-256"]).await;
    let seen = outcome.unwrap_or_else(|r| panic!("refused ({r}): {text}"));
    assert!(
        text.contains("Server Temp Key: ECDH, prime256v1"),
        "group: {text}"
    );
    assert!(!text.contains("X25519"), "{text}");
    assert_eq!(seen.cipher, "TLS_AES_256_GCM_SHA384");

    // The default lists take X25519 from the same client.
    let (text, outcome) = s_client(Algorithms::Default, &["-groups", "X25519:P-256"]).await;
    assert!(outcome.is_ok(), "{text}");
    assert!(text.contains("Server Temp Key: X25519"), "{text}");

    // ChaCha20 offered first: AES-GCM.
    let (text, outcome) = s_client(
        Algorithms::Fips,
        &[
            "-ciphersuites",
            "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
        ],
    )
    .await;
    let seen = outcome.unwrap_or_else(|r| panic!("refused ({r}): {text}"));
    assert_eq!(seen.cipher, "TLS_AES_128_GCM_SHA256");

    // Only X25519, or only ChaCha20: refused.
    let (text, outcome) = s_client(Algorithms::Fips, &["-groups", "X25519"]).await;
    assert_eq!(outcome.err(), Some("incompatible"), "{text}");
    let (text, outcome) = s_client(
        Algorithms::Fips,
        &["-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
    )
    .await;
    assert_eq!(outcome.err(), Some("incompatible"), "{text}");

    // Our own default client (X25519 first) against a FIPS server.
    let p = pki();
    let srv = server(
        Backend::Openssl,
        &p.server,
        &p.set,
        PeerMatch::Any,
        &opts(|o| o.algorithms = Algorithms::Fips),
        ClientAuth::Required,
    );
    let cli = client(
        Backend::Openssl,
        Some(&p.client),
        &p.set,
        PeerMatch::Any,
        &opts(|_| {}),
    );
    let (s, c) = run(&srv, &cli).await;
    assert_eq!(s.expect("server").cipher, "TLS_AES_256_GCM_SHA384");
    assert_eq!(c.expect("client").version, "TLSv1.3");
}

#[tokio::test]
async fn alpn_picks_the_servers_first_choice_and_no_overlap_fails_alike() {
    let p = pki();
    let srv_opts = opts(|o| o.alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    let offer = opts(|o| o.alpn = vec![b"http/1.1".to_vec(), b"h2".to_vec()]);
    let other = opts(|o| o.alpn = vec![b"spdy/3".to_vec()]);
    let mut client_labels = Vec::new();
    for (s_backend, c_backend) in [
        (Backend::Openssl, Backend::Openssl),
        (Backend::Openssl, Backend::Rustls),
        (Backend::Rustls, Backend::Openssl),
        (Backend::Rustls, Backend::Rustls),
    ] {
        let srv = server(
            s_backend,
            &p.server,
            &p.set,
            PeerMatch::Any,
            &srv_opts,
            ClientAuth::Required,
        );
        let cli = client(c_backend, Some(&p.client), &p.set, PeerMatch::Any, &offer);
        let (s, c) = run(&srv, &cli).await;
        assert_eq!(s.expect("server").alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(c.expect("client").alpn.as_deref(), Some(&b"h2"[..]));

        let cli = client(c_backend, Some(&p.client), &p.set, PeerMatch::Any, &other);
        let (s, c) = run(&srv, &cli).await;
        assert_eq!(
            s.err(),
            Some("no_alpn"),
            "{s_backend:?} server, {c_backend:?} client"
        );
        client_labels.push((s_backend, c_backend, c.err()));
    }
    for c_backend in BOTH {
        let labels: Vec<_> = client_labels.iter().filter(|l| l.1 == c_backend).collect();
        assert_eq!(labels[0].2, labels[1].2, "{labels:?}");
        assert!(labels[0].2.is_some(), "{labels:?}");
    }
}

#[tokio::test]
async fn tls12_is_accepted_only_when_configured() {
    let p = pki();
    let tls12 = rustls_tls12_client(&p.client, &p.set);
    let floor12 = server(
        Backend::Openssl,
        &p.server,
        &p.set,
        PeerMatch::Any,
        &opts(|o| o.min_version = TlsMin::Tls12),
        ClientAuth::Required,
    );
    let (s, c) = run(&floor12, &tls12).await;
    let s = s.expect("TLS 1.2 accepted");
    assert_eq!(s.version, "TLSv1.2");
    assert_eq!(s.peer, Some(id("spiffe://example.org/client")));
    assert!(
        s.cipher.starts_with("ECDHE-ECDSA-AES256-GCM"),
        "{}",
        s.cipher
    );
    assert!(c.is_ok());

    // A TLS 1.3-only server refuses it on both backends, with one label.
    for backend in BOTH {
        let floor13 = server(
            backend,
            &p.server,
            &p.set,
            PeerMatch::Any,
            &opts(|_| {}),
            ClientAuth::Required,
        );
        let (s, c) = run(&floor13, &tls12).await;
        assert_eq!(s.err(), Some("tls_version"), "{backend:?} server");
        assert_eq!(
            c.err(),
            Some("tls_version"),
            "client of a {backend:?} server"
        );
    }
}

#[tokio::test]
async fn client_certificates_optional_or_required() {
    let p = pki();
    let mut refused = Vec::new();
    for s_backend in BOTH {
        for c_backend in BOTH {
            let anonymous = client(c_backend, None, &p.set, PeerMatch::Any, &opts(|_| {}));
            let optional = server(
                s_backend,
                &p.server,
                &p.set,
                PeerMatch::Any,
                &opts(|_| {}),
                ClientAuth::Optional,
            );
            let (s, c) = run(&optional, &anonymous).await;
            let s = s.expect("no certificate is fine when optional");
            assert_eq!((s.peer, s.peer_certs), (None, 0));
            assert_eq!(
                c.expect("client").peer,
                Some(id("spiffe://example.org/server"))
            );

            // Optional still checks a certificate that is presented.
            let strict = PeerMatch::OneOf(vec![id("spiffe://example.org/someone-else")]);
            let picky = server(
                s_backend,
                &p.server,
                &p.set,
                strict,
                &opts(|_| {}),
                ClientAuth::Optional,
            );
            let with_cert = client(
                c_backend,
                Some(&p.client),
                &p.set,
                PeerMatch::Any,
                &opts(|_| {}),
            );
            let (s, _) = run(&picky, &with_cert).await;
            assert_eq!(s.err(), Some("peer_id_mismatch"));

            let required = server(
                s_backend,
                &p.server,
                &p.set,
                PeerMatch::Any,
                &opts(|_| {}),
                ClientAuth::Required,
            );
            let (s, c) = run(&required, &anonymous).await;
            assert_eq!(s.err(), Some("no_client_cert"), "{s_backend:?} server");
            refused.push((c_backend, c.err()));
        }
    }
    for c_backend in BOTH {
        let labels: Vec<_> = refused.iter().filter(|l| l.0 == c_backend).collect();
        assert_eq!(labels[0].1, labels[1].1, "{labels:?}");
        assert_eq!(labels[0].1, Some("peer_rejected_cert"), "{labels:?}");
    }
}

#[tokio::test]
async fn sessions_resume_with_client_certificates_and_keep_the_peer_chain() {
    let p = pki();
    let on = opts(|o| o.resumption = true);
    for (s_backend, c_backend) in [
        (Backend::Openssl, Backend::Openssl),
        (Backend::Openssl, Backend::Rustls),
        (Backend::Rustls, Backend::Openssl),
    ] {
        let srv = server(
            s_backend,
            &p.server,
            &p.set,
            PeerMatch::Any,
            &on,
            ClientAuth::Required,
        );
        let cli = client(c_backend, Some(&p.client), &p.set, PeerMatch::Any, &on);
        let (s, c) = run(&srv, &cli).await;
        assert!(!s.expect("first").resumed && !c.expect("first").resumed);
        let (s, c) = run(&srv, &cli).await;
        let (s, c) = (s.expect("second server"), c.expect("second client"));
        let pair = format!("{s_backend:?} server, {c_backend:?} client");
        assert!(s.resumed && c.resumed, "{pair}: {s:?} {c:?}");
        assert_eq!(s.peer, Some(id("spiffe://example.org/client")), "{pair}");
        assert_eq!(c.peer, Some(id("spiffe://example.org/server")), "{pair}");
        assert_eq!((s.peer_certs, c.peer_certs), (2, 2), "{pair}");
        // A connection dropped without close_notify still leaves a session
        // to resume (as with rustls), with the whole server chain.
        let (s, c) = run_abrupt(&srv, &cli).await;
        assert!(s.is_ok() && c.is_ok(), "{pair}: abrupt close");
        let (_, c) = run(&srv, &cli).await;
        let c = c.expect("after an abrupt close");
        assert!(c.resumed, "{pair}: resumed after an abrupt close");
        assert_eq!(c.peer_certs, 2, "{pair}");
    }

    // A cached session is offered only while its server chain passes the
    // connection's check: a connection that expects another server gets a
    // full handshake (and refuses the server), never a resumed session.
    let srv = server(
        Backend::Openssl,
        &p.server,
        &p.set,
        PeerMatch::Any,
        &on,
        ClientAuth::Required,
    );
    let cli = client(
        Backend::Openssl,
        Some(&p.client),
        &p.set,
        PeerMatch::Any,
        &on,
    );
    assert!(run(&srv, &cli).await.1.is_ok());
    let Client::Openssl(ctx, _) = &cli else {
        unreachable!("an OpenSSL client")
    };
    let elsewhere = PeerMatch::OneOf(vec![id("spiffe://example.org/other-server")]);
    let pinned = Client::Openssl(ctx.clone(), check(&p.set, elsewhere));
    let (s, c) = run(&srv, &pinned).await;
    assert_eq!(c.err(), Some("peer_id_mismatch"));
    assert!(s.is_err());
    // The sessions that check refused were dropped: a full handshake next.
    let (_, c) = run(&srv, &cli).await;
    assert!(!c.expect("full handshake").resumed);
    let (_, c) = run(&srv, &cli).await;
    assert!(c.expect("resumed again").resumed);
}
