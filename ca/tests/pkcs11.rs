//! The CA key on a PKCS#11 token (SoftHSM2): a self-signed root whose key
//! is generated on the token, an intermediate whose key is on the token and
//! whose CSR an openssl root signs, the start-up refusals, concurrent
//! signing, and a token failure at run time that the node API reports as
//! UNAVAILABLE and recovers from. Each test runs in a child process with
//! its own token directory (support/softhsm.rs says why).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use meshid_ca::authority::{Authority, AuthorityConfig};
use meshid_ca::config::{CaConfig, KeyType, UpstreamConfig};
use meshid_ca::csr::IntermediateCsr;
use meshid_ca::keymanager::{KeyManager, Pkcs11KeyManager, pkcs11};
use meshid_ca::node_attestor::join_token;
use meshid_ca::server::CaServer;
use meshid_ca::upstream::{CA_KEY_SLOT, Disk, SelfSigned, UpstreamAuthority};
use meshid_identity::x509::{pem_certs, to_pem};
use meshid_identity::{PrivateKey, SpiffeId, TrustBundle, TrustDomain};
use meshid_proto::ca::AttestRequest;
use meshid_tests::node::csr;
use meshid_tests::node_client;
use meshid_tests::pki::{Alg, Pki, openssl};
use tonic::Code;

#[path = "support/server.rs"]
mod server;
#[path = "support/softhsm.rs"]
mod softhsm;

use softhsm::{Hsm, MODULE, PIN};

fn td() -> TrustDomain {
    TrustDomain::new(server::TD).unwrap()
}

fn workload() -> SpiffeId {
    "spiffe://example.org/ns/payments/sa/api".parse().unwrap()
}

/// Signs an SVID with `authority` and has `openssl verify -x509_strict`
/// check it against `root` (the authority's chain as untrusted).
fn openssl_verifies(dir: &Path, authority: &Authority, root: &Path) {
    let key = PrivateKey::generate_p256().unwrap();
    let svid = authority
        .sign_agent_svid(&workload(), &key.public_key_der(), SystemTime::now())
        .unwrap();
    let (leaf, chain) = svid.chain.split_first().unwrap();
    let leaf_path = dir.join("svid.pem");
    std::fs::write(&leaf_path, to_pem(std::slice::from_ref(leaf))).unwrap();
    let mut args = vec![
        "verify".to_string(),
        "-x509_strict".into(),
        "-CAfile".into(),
        root.display().to_string(),
    ];
    if !chain.is_empty() {
        let chain_path = dir.join("svid-chain.pem");
        std::fs::write(&chain_path, to_pem(chain)).unwrap();
        args.extend(["-untrusted".into(), chain_path.display().to_string()]);
    }
    args.push(leaf_path.display().to_string());
    openssl(args);
}

/// A self-signed authority whose root key is on `token`.
fn self_signed(hsm: &Hsm, keys: &Pkcs11KeyManager) -> Authority {
    let upstream = SelfSigned::new(&hsm.dir, Duration::from_secs(86400));
    Authority::new(
        AuthorityConfig::new(td()),
        &upstream,
        keys,
        SystemTime::now(),
    )
    .unwrap()
}

/// The CA key's protections, read through cryptoki as any other token
/// user would; `secret` is the attribute holding the private value
/// (CKA_VALUE for EC, CKA_PRIVATE_EXPONENT for RSA).
fn assert_key_cannot_leave(token: &str, secret: AttributeType) {
    let ctx = pkcs11::module(Path::new(MODULE)).unwrap();
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == token)
        .unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&PIN.to_string().into()));
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"meshid-x509-ca".to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "one private key labelled meshid-x509-ca");
    let attrs = session
        .get_attributes(
            found[0],
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sign,
            ],
        )
        .unwrap();
    for want in [
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sign(true),
    ] {
        assert!(attrs.contains(&want), "{want:?} missing from {attrs:?}");
    }
    let info = session.get_attribute_info(found[0], &[secret]).unwrap();
    assert!(matches!(info[..], [AttributeInfo::Sensitive]), "{info:?}");
    let value = session.get_attributes(found[0], &[secret]).unwrap();
    assert!(value.is_empty(), "{secret:?} was readable: {value:?}");
}

#[test]
fn a_self_signed_root_with_its_key_on_the_token_issues_svids_openssl_verifies() {
    softhsm::run(
        "a_self_signed_root_with_its_key_on_the_token_issues_svids_openssl_verifies",
        |hsm| async move {
            hsm.init_token("meshid");
            let keys =
                Pkcs11KeyManager::open(&hsm.pkcs11("meshid", KeyType::EcP256), &hsm.dir).unwrap();
            let authority = self_signed(&hsm, &keys);
            let root = hsm.dir.join("ca.crt.pem");
            openssl_verifies(&hsm.dir, &authority, &root);
            assert_key_cannot_leave("meshid", AttributeType::Value);
            assert!(
                !hsm.dir.join("x509-ca.key.pem").exists(),
                "no CA key file is written"
            );
            assert!(
                hsm.dir.join("jwt.key.pem").exists(),
                "the JWT key stays on disk"
            );
            assert_eq!(
                keys.key_ref(CA_KEY_SLOT),
                "pkcs11:token=meshid;object=meshid-x509-ca"
            );
            // A new key manager (a restart) finds the same key and root.
            let again =
                Pkcs11KeyManager::open(&hsm.pkcs11("meshid", KeyType::EcP256), &hsm.dir).unwrap();
            assert_eq!(
                self_signed(&hsm, &again).cert_chain(),
                authority.cert_chain()
            );
        },
    );
}

#[test]
fn an_rsa_root_key_is_generated_on_the_token_and_signs_sha256_with_rsa() {
    softhsm::run(
        "an_rsa_root_key_is_generated_on_the_token_and_signs_sha256_with_rsa",
        |hsm| async move {
            hsm.init_token("meshid-rsa");
            let keys =
                Pkcs11KeyManager::open(&hsm.pkcs11("meshid-rsa", KeyType::Rsa2048), &hsm.dir)
                    .unwrap();
            let authority = self_signed(&hsm, &keys);
            let root = authority.cert_chain().pop().unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&root).unwrap();
            assert_eq!(
                cert.signature_algorithm.algorithm,
                x509_parser::oid_registry::OID_PKCS1_SHA256WITHRSA
            );
            openssl_verifies(&hsm.dir, &authority, &hsm.dir.join("ca.crt.pem"));
            assert_key_cannot_leave("meshid-rsa", AttributeType::PrivateExponent);
            // The same label asked for as another key type is refused.
            let e = Pkcs11KeyManager::open(&hsm.pkcs11("meshid-rsa", KeyType::EcP256), &hsm.dir)
                .unwrap()
                .load_signer(CA_KEY_SLOT)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("it is an RSA key but key_type is ec-p256"),
                "{e}"
            );
        },
    );
}

/// The mesh intermediate's CSR (`meshid ca csr`'s builder), signed
/// through `keys`' token key.
fn csr_on_token(keys: &Pkcs11KeyManager) -> String {
    let key = keys.generate_signer(CA_KEY_SLOT).unwrap();
    IntermediateCsr::new(td()).sign(&key).unwrap().pem
}

#[test]
fn an_intermediate_whose_key_is_on_the_token_is_signed_by_an_openssl_root_and_used() {
    softhsm::run(
        "an_intermediate_whose_key_is_on_the_token_is_signed_by_an_openssl_root_and_used",
        |hsm| async move {
            hsm.init_token("meshid");
            let pkcs11 = hsm.pkcs11("meshid", KeyType::EcP256);
            let keys = Pkcs11KeyManager::open(&pkcs11, &hsm.dir).unwrap();
            let pki = Pki::new(&hsm.dir);
            pki.root("root", Alg::Rsa(2048));
            let csr_path = hsm.dir.join("mesh.csr");
            std::fs::write(&csr_path, csr_on_token(&keys)).unwrap();
            pki.sign(
                "mesh",
                &csr_path,
                "root",
                "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectAltName=URI:spiffe://example.org",
            );
            let (inter, root) = (pki.cert("mesh"), pki.cert("root"));
            let up = UpstreamConfig {
                key_file: None,
                root_file: Some(root.clone()),
                ..UpstreamConfig::files(&inter, "")
            };
            let authority = Authority::new(
                AuthorityConfig::new(td()),
                &Disk::from_config(&up),
                &keys,
                SystemTime::now(),
            )
            .unwrap();
            authority.check_issuance(SystemTime::now()).unwrap();
            openssl_verifies(&hsm.dir, &authority, &root);
            // The CA itself starts on this config, and `meshid ca validate`'s
            // check passes.
            let cfg = CaConfig {
                upstream: Some(up.clone()),
                keys: Hsm::keys(pkcs11.clone()),
                ..server::config(&hsm.dir.join("ca"))
            };
            cfg.clone().preflight(SystemTime::now()).unwrap();
            let ca = server::start(cfg).await;
            ca.shutdown().await.unwrap();
            // The same chain with another key on the token does not match.
            let other = meshid_ca::config::Pkcs11Config {
                key_label: "other".into(),
                ..pkcs11
            };
            let other_keys = Pkcs11KeyManager::open(&other, &hsm.dir).unwrap();
            other_keys.generate_signer(CA_KEY_SLOT).unwrap();
            let e = Disk::from_config(&up)
                .obtain(&td(), &other_keys, SystemTime::now())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("the key does not match the signing certificate"),
                "{e}"
            );
        },
    );
}

/// Starts the CA with `keys`; the error text if it refuses.
async fn start_refused(hsm: &Hsm, cfg: CaConfig) -> String {
    let _ = hsm;
    match CaServer::start(cfg.validate().unwrap()).await {
        Ok(_) => panic!("the CA started"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_ca_refuses_to_start_without_its_token_pin_or_key() {
    softhsm::run(
        "the_ca_refuses_to_start_without_its_token_pin_or_key",
        |hsm| async move {
            hsm.init_token("meshid");
            let config = |p| CaConfig {
                keys: Hsm::keys(p),
                ..server::config(&hsm.dir.join("ca"))
            };
            let good = hsm.pkcs11("meshid", KeyType::EcP256);

            let wrong_pin = meshid_ca::config::Pkcs11Config {
                pin_file: Some(hsm.pin_file("999999")),
                ..good.clone()
            };
            let e = start_refused(&hsm, config(wrong_pin.clone())).await;
            assert!(e.contains("PIN rejected by token \"meshid\""), "{e}");
            assert!(!e.contains("999999"), "the PIN is never printed: {e}");
            // `meshid ca validate` opens the token too.
            let e = config(wrong_pin)
                .preflight(SystemTime::now())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("keys.pkcs11") && e.contains("PIN rejected"),
                "{e}"
            );

            let missing_token = meshid_ca::config::Pkcs11Config {
                token_label: Some("nope".into()),
                ..good.clone()
            };
            let e = start_refused(&hsm, config(missing_token)).await;
            assert!(
                e.contains("token \"nope\" not found in /usr/lib/softhsm/libsofthsm2.so")
                    && e.contains("softhsm2-util --init-token")
                    && e.contains("\"meshid\" (slot"),
                "{e}"
            );

            let no_env = meshid_ca::config::Pkcs11Config {
                pin_file: None,
                pin_env: Some("MESHID_TEST_NO_SUCH_PIN_VAR".into()),
                ..good.clone()
            };
            let e = start_refused(&hsm, config(no_env)).await;
            assert!(e.contains("MESHID_TEST_NO_SUCH_PIN_VAR"), "{e}");

            // An intermediate needs its key on the token already.
            let pki = Pki::new(&hsm.dir);
            pki.root("root", Alg::P256);
            pki.mesh_ca(
                "mesh",
                "root",
                Alg::P256,
                "subjectAltName=URI:spiffe://example.org",
            );
            let up = UpstreamConfig {
                key_file: None,
                root_file: Some(pki.cert("root")),
                ..UpstreamConfig::files(pki.cert("mesh"), "")
            };
            let cfg = CaConfig {
                upstream: Some(up),
                ..config(good)
            };
            let e = start_refused(&hsm, cfg).await;
            assert!(
                e.contains("pkcs11:token=meshid;object=meshid-x509-ca")
                    && e.contains("the intermediate's key is not on the token"),
                "{e}"
            );
        },
    );
}

#[test]
fn many_concurrent_signatures_through_the_session_pool_all_succeed() {
    softhsm::run(
        "many_concurrent_signatures_through_the_session_pool_all_succeed",
        |hsm| async move {
            hsm.init_token("meshid");
            let keys =
                Pkcs11KeyManager::open(&hsm.pkcs11("meshid", KeyType::EcP256), &hsm.dir).unwrap();
            let authority = Arc::new(self_signed(&hsm, &keys));
            let subject = PrivateKey::generate_p256().unwrap().public_key_der();
            let threads: Vec<_> = (0..16)
                .map(|_| {
                    let (a, spki) = (Arc::clone(&authority), subject.clone());
                    std::thread::spawn(move || {
                        (0..25)
                            .map(|_| a.sign_agent_svid(&workload(), &spki, SystemTime::now()))
                            .filter(Result::is_ok)
                            .count()
                    })
                })
                .collect();
            let signed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
            assert_eq!(signed, 16 * 25);
        },
    );
}

/// Attests a new agent with a fresh join token.
async fn attest(ca: &CaServer, bundle: &TrustBundle) -> Result<(), tonic::Status> {
    let (token, rec) = join_token::generate(SystemTime::now(), Duration::from_secs(600), None);
    ca.store.create_join_token(&rec).await.unwrap();
    let key = PrivateKey::generate_p256().unwrap();
    let mut client = node_client(ca.node_addr, bundle, None).await;
    client
        .attest(AttestRequest {
            attestation_type: "join_token".into(),
            payload: token.as_bytes().to_vec(),
            csr: csr(&key),
        })
        .await
        .map(|_| ())
}

#[test]
fn a_token_failure_at_run_time_is_unavailable_to_the_agent_and_the_next_call_recovers() {
    softhsm::run(
        "a_token_failure_at_run_time_is_unavailable_to_the_agent_and_the_next_call_recovers",
        |hsm| async move {
            hsm.init_token("meshid");
            let data = hsm.dir.join("ca");
            let cfg = CaConfig {
                keys: Hsm::keys(hsm.pkcs11("meshid", KeyType::EcP256)),
                ..server::config(&data)
            };
            let ca = server::start(cfg).await;
            let mut bundle = TrustBundle::new(td());
            let root = std::fs::read_to_string(data.join("ca.crt.pem")).unwrap();
            bundle.x509_authorities = pem_certs(&root).unwrap();
            attest(&ca, &bundle).await.unwrap();

            // A real fault: another session of this process logs the token
            // out, which ends the login of every session the CA holds.
            let ctx = pkcs11::module(Path::new(MODULE)).unwrap();
            let slot = ctx.get_slots_with_initialized_token().unwrap()[0];
            ctx.open_ro_session(slot).unwrap().logout().unwrap();

            let status = attest(&ca, &bundle).await.unwrap_err();
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            assert!(
                status
                    .message()
                    .contains("the CA signing key on the pkcs11 token is unavailable"),
                "{status:?}"
            );
            let metrics = ca.metrics.encode();
            assert!(
                metrics.contains("meshid_ca_signing_errors_total{backend=\"pkcs11\"} 1"),
                "{metrics}"
            );
            attest(&ca, &bundle).await.unwrap();
            ca.shutdown().await.unwrap();
        },
    );
}

#[test]
fn a_root_whose_key_is_on_the_token_is_not_rotated_here_and_prepare_says_why() {
    softhsm::run(
        "a_root_whose_key_is_on_the_token_is_not_rotated_here_and_prepare_says_why",
        |hsm| async move {
            hsm.init_token("meshid");
            let cfg = CaConfig {
                keys: Hsm::keys(hsm.pkcs11("meshid", KeyType::EcP256)),
                ..server::config(&hsm.dir.join("ca"))
            };
            let ca = server::start(cfg).await;
            let e = ca
                .engine
                .prepare(meshid_ca::store::KeyKind::X509)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("PKCS#11 token") && e.contains("meshid ca csr --hsm"),
                "{e}"
            );
            // The JWT key is on disk: it rotates.
            ca.engine
                .prepare(meshid_ca::store::KeyKind::Jwt)
                .await
                .unwrap();
            ca.shutdown().await.unwrap();
        },
    );
}
