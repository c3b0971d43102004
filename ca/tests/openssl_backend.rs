//! The CA on the OpenSSL backend (`tls_backend = "openssl"`), in process:
//! its node API serves clients of both backends (the rustls test client,
//! which is the agent's pinned TLS, and an OpenSSL client built on
//! `identity::openssl`) through attest, sync, sign, JWT mint and renew, and
//! a rustls CA serves the OpenSSL client the same way. What it signs
//! through OpenSSL verifies with meshid's verifiers and with the `openssl`
//! CLI; `fips = true` is refused before anything starts.
#![cfg(feature = "openssl")]
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use meshid_ca::config::CaConfig;
use meshid_ca::keymanager::Signing;
use meshid_ca::node_attestor::join_token;
use meshid_ca::server::CaServer;
use meshid_ca::store::NewEntry;
use meshid_identity::tls::TlsBackend;
use meshid_identity::{BundleSet, PrivateKey, Selector, SpiffeId, TrustBundle, verify_x509_svid};
use meshid_proto::ca::node_client::NodeClient;
use meshid_proto::ca::{
    AttestRequest, JwtSvidRequest, MintJwtSvidsRequest, RenewAgentRequest, SignX509SvidsRequest,
    SvidRequest, SyncRequest, jwt_svid_result, svid_result,
};
use meshid_tests::node::csr;
use rustls::pki_types::CertificateDer;
use tonic::transport::Channel;

#[path = "openssl_backend/cli.rs"]
mod cli;
#[path = "openssl_backend/client.rs"]
mod client;
#[path = "support/server.rs"]
mod server;
#[path = "downstream/setup.rs"]
mod setup;

use server::{Agent, TD};

/// A CA on `backend` keeping its state in a temp dir.
async fn start(backend: TlsBackend) -> (CaServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = CaConfig {
        tls_backend: backend,
        ..server::config(dir.path())
    };
    (server::start(cfg).await, dir)
}

fn bundle(ca: &CaServer) -> TrustBundle {
    ca.authority.bundle().as_ref().clone()
}

/// A node API client on `backend`, as `agent` if given.
async fn node(
    backend: TlsBackend,
    addr: SocketAddr,
    bundle: &TrustBundle,
    agent: Option<&Agent>,
) -> NodeClient<Channel> {
    match backend {
        TlsBackend::Rustls => meshid_tests::node_client(addr, bundle, agent.map(Agent::svid)).await,
        TlsBackend::Openssl => client::node_client(addr, bundle, agent).await,
    }
}

/// What one client backend did against one CA.
struct Issued {
    agent: Agent,
    svid: Vec<CertificateDer<'static>>,
    jwt: String,
}

/// Attest, sync, sign, mint a JWT-SVID and renew against `ca` with a client
/// on `backend`; every SVID verifies under the CA's bundle.
async fn exercise(ca: &CaServer, backend: TlsBackend) -> Issued {
    let bundle = bundle(ca);
    let bundles: BundleSet = [bundle.clone()].into_iter().collect();
    let now = SystemTime::now();

    let (token, rec) = join_token::generate(now, Duration::from_secs(600), None);
    ca.store.create_join_token(&rec).await.unwrap();
    let key = PrivateKey::generate_p256().unwrap();
    let resp = node(backend, ca.node_addr, &bundle, None)
        .await
        .attest(AttestRequest {
            attestation_type: "join_token".into(),
            payload: token.into_bytes(),
            csr: csr(&key),
        })
        .await
        .unwrap_or_else(|e| panic!("attest over {backend}: {e}"))
        .into_inner();
    let agent = Agent::from_svid(key, resp.svid.unwrap());
    assert_eq!(
        verify_x509_svid(&agent.chain, &bundles, now)
            .unwrap()
            .spiffe_id,
        agent.id
    );

    let web: SpiffeId = format!("spiffe://{TD}/web-{backend}").parse().unwrap();
    let entry = NewEntry::new(
        web.clone(),
        agent.id.clone(),
        vec![Selector::parse("unix:uid:1000").unwrap()],
    );
    let entry = ca.store.create_entry(entry).await.unwrap().id;

    let mut c = node(backend, ca.node_addr, &bundle, Some(&agent)).await;
    let sync = c
        .sync(SyncRequest::default())
        .await
        .unwrap_or_else(|e| panic!("sync over {backend}: {e}"))
        .into_inner();
    assert_eq!(
        sync.entries.iter().map(|e| &e.id).collect::<Vec<_>>(),
        [&entry]
    );

    let resp = c
        .sign_x509_svids(SignX509SvidsRequest {
            requests: vec![SvidRequest {
                entry_id: entry.clone(),
                csr: csr(&PrivateKey::generate_p256().unwrap()),
                ttl_seconds: 0,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let svid_result::Result::Svid(svid) = resp.results[0].result.clone().unwrap() else {
        panic!("expected an SVID: {:?}", resp.results[0])
    };
    let svid: Vec<CertificateDer<'static>> = svid
        .cert_chain
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    assert_eq!(
        verify_x509_svid(&svid, &bundles, now).unwrap().spiffe_id,
        web
    );

    let jwt = c
        .mint_jwt_svids(MintJwtSvidsRequest {
            requests: vec![JwtSvidRequest {
                entry_id: entry,
                audience: vec!["payments".into()],
                ttl_seconds: 60,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let jwt_svid_result::Result::Svid(jwt) = jwt.results[0].result.clone().unwrap() else {
        panic!("expected a JWT-SVID: {:?}", jwt.results[0])
    };
    let claims = meshid_identity::jwt::validate(&jwt.token, "payments", &bundles, now).unwrap();
    assert_eq!(claims.spiffe_id, web);

    let new_key = PrivateKey::generate_p256().unwrap();
    let renewed = c
        .renew_agent(RenewAgentRequest { csr: csr(&new_key) })
        .await
        .unwrap_or_else(|e| panic!("renew over {backend}: {e}"))
        .into_inner();
    let renewed = Agent::from_svid(new_key, renewed.svid.unwrap());
    assert_eq!(renewed.id, agent.id);
    assert_ne!(renewed.chain[0], agent.chain[0]);
    // The renewed SVID is the agent's from now on, on this backend too.
    let mut again = node(backend, ca.node_addr, &bundle, Some(&renewed)).await;
    again.sync(SyncRequest::default()).await.unwrap();

    Issued {
        agent: renewed,
        svid,
        jwt: jwt.token,
    }
}

#[tokio::test]
async fn an_openssl_ca_serves_rustls_and_openssl_agents() {
    let (ca, _dir) = start(TlsBackend::Openssl).await;
    assert_eq!(
        ca.authority.load().material().key.signing(),
        Some(Signing::Openssl),
        "the CA key signs through OpenSSL"
    );
    for backend in [TlsBackend::Rustls, TlsBackend::Openssl] {
        exercise(&ca, backend).await;
    }
    // The serving certificate it presents is an SVID for the CA's ID.
    let serving = server::serving_chain(&ca).await;
    let bundles: BundleSet = [bundle(&ca)].into_iter().collect();
    let v = verify_x509_svid(&serving, &bundles, SystemTime::now()).unwrap();
    assert_eq!(v.spiffe_id.as_str(), format!("spiffe://{TD}/meshid/ca"));
    ca.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_rustls_ca_serves_openssl_agents() {
    let (ca, _dir) = start(TlsBackend::Rustls).await;
    assert_eq!(
        ca.authority.load().material().key.signing(),
        Some(Signing::Ring)
    );
    exercise(&ca, TlsBackend::Openssl).await;
    ca.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_openssl_client_refuses_a_ca_under_another_root() {
    // Two CAs of the same trust domain, different roots: the OpenSSL
    // client holding the first's bundle refuses the second's serving
    // certificate in the handshake.
    let (first, _d1) = start(TlsBackend::Rustls).await;
    let (second, _d2) = start(TlsBackend::Openssl).await;
    let err = client::try_channel(second.node_addr, &bundle(&first), None)
        .await
        .unwrap_err();
    // Both roots have the same name, so the chain reaches the wrong one:
    // the signature check refuses it (as rustls's verifier does).
    let reason = client::handshake_reason(&err);
    assert!(
        matches!(reason, Some("bad_signature" | "unknown_issuer")),
        "{reason:?}: {}",
        client::error_text(&err)
    );
    first.shutdown().await.unwrap();
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn what_openssl_signs_verifies_with_the_openssl_cli() {
    let (ca, dir) = start(TlsBackend::Openssl).await;
    let issued = exercise(&ca, TlsBackend::Openssl).await;
    let roots = &bundle(&ca).x509_authorities;
    for (name, chain) in [
        ("workload", &issued.svid),
        ("agent", &issued.agent.chain),
        ("serving", &server::serving_chain(&ca).await),
    ] {
        cli::verify_chain(dir.path(), name, chain, roots);
    }
    let jwt_key = &bundle(&ca).jwt_authorities[0];
    cli::verify_es256(dir.path(), &issued.jwt, &jwt_key.public_key_der);
    ca.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_disk_intermediate_key_signs_through_openssl() {
    // An enterprise intermediate from files: its key (PKCS#8 on disk)
    // signs through OpenSSL like a generated one.
    let dir = tempfile::tempdir().unwrap();
    let files = cli::enterprise_intermediate(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let cfg = CaConfig {
        tls_backend: TlsBackend::Openssl,
        upstream: Some(meshid_ca::config::UpstreamConfig {
            root_file: Some(files.root.clone()),
            ..meshid_ca::config::UpstreamConfig::files(&files.chain, &files.key)
        }),
        ..server::config(&data)
    };
    let ca = server::start(cfg).await;
    assert_eq!(
        ca.authority.load().material().key.signing(),
        Some(Signing::Openssl)
    );
    let issued = exercise(&ca, TlsBackend::Rustls).await;
    let roots = &bundle(&ca).x509_authorities;
    cli::verify_chain(dir.path(), "below-enterprise", &issued.svid, roots);
    ca.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_downstream_ca_on_openssl_mints_its_intermediate_from_either_upstream() {
    for upstream_backend in [TlsBackend::Rustls, TlsBackend::Openssl] {
        let dir = tempfile::tempdir().unwrap();
        let up_dir = dir.path().join("upstream");
        let upstream = setup::Ca::start(
            CaConfig {
                tls_backend: upstream_backend,
                ..server::config(&up_dir)
            },
            &up_dir,
        )
        .await;
        upstream.downstream_entry().await;
        let (token, _) = upstream.token(Some(setup::ALIAS)).await;
        let down_dir = dir.path().join("downstream");
        let cfg = CaConfig {
            tls_backend: TlsBackend::Openssl,
            ..setup::downstream_config(&upstream, &token, &down_dir)
        };
        let downstream = setup::Ca::start(cfg, &down_dir).await;
        let authority = downstream.server.authority.load();
        assert_eq!(authority.kind(), "meshid", "below {upstream_backend}");
        assert_eq!(authority.material().key.signing(), Some(Signing::Openssl));
        drop(authority);
        // Its SVIDs chain to the upstream's root.
        let east = downstream.workload("east/api").await;
        let root = dir.path().join("root.pem");
        std::fs::write(
            &root,
            meshid_identity::x509::to_pem(&upstream.bundle().x509_authorities),
        )
        .unwrap();
        setup::openssl_verify(dir.path(), &root, &east.chain);
        downstream.server.shutdown().await.unwrap();
        upstream.server.shutdown().await.unwrap();
    }
}

#[test]
fn fips_is_refused_where_there_is_no_fips_provider_and_on_rustls() {
    let dir = tempfile::tempdir().unwrap();
    let on = |backend| CaConfig {
        tls_backend: backend,
        fips: true,
        ..server::config(dir.path())
    };
    let err = on(TlsBackend::Rustls).validate().unwrap_err().to_string();
    assert!(
        err.contains(
            "fips = true needs tls_backend = \"openssl\" (rustls here uses ring, which is not a FIPS-validated module)"
        ),
        "{err}"
    );
    let err = on(TlsBackend::Openssl).validate().unwrap_err().to_string();
    if !meshid_identity::openssl::fips::available() {
        assert!(err.contains("fips = true, but OpenSSL"), "{err}");
        assert!(err.contains("has no \"fips\" provider"), "{err}");
        assert!(
            err.contains("install a FIPS-validated OpenSSL build"),
            "{err}"
        );
    }
    assert!(
        !Path::new(&dir.path().join("ca.db")).exists(),
        "nothing was created"
    );
}

#[test]
fn the_backend_is_read_from_the_config_file() {
    let cfg =
        CaConfig::from_toml("trust_domain = \"example.org\"\ntls_backend = \"openssl\"\n").unwrap();
    assert_eq!(cfg.tls_backend, TlsBackend::Openssl);
    assert!(!cfg.fips);
    let err = CaConfig::from_toml("tls_backend = \"boring\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls_backend"), "{err}");
}
