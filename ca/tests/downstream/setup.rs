//! An upstream CA and a downstream CA below it, in process on loopback,
//! and what the stories need: join tokens, the downstream entry, an agent
//! and a workload SVID from either CA, openssl verify, an mTLS handshake.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_ca::config::{CaConfig, JoinToken, MeshidUpstreamConfig, UpstreamConfig};
use meshid_ca::node_attestor::join_token;
use meshid_ca::server::CaServer;
use meshid_ca::store::NewEntry;
use meshid_identity::tls::{PeerMatch, SpiffeVerifier, peer_spiffe_id};
use meshid_identity::x509::to_pem;
use meshid_identity::{BundleSet, PrivateKey, Selector, SpiffeId, TrustBundle, crypto};
use meshid_proto::ca::{AttestRequest, SignX509SvidsRequest, SvidRequest, svid_result};
use meshid_tests::node::csr;
use meshid_tests::{ClientSvid, node_client};
use rustls::pki_types::{CertificateDer, ServerName};

use super::server::{self, TD};

/// The node alias of the downstream CA's join token.
pub const ALIAS: &str = "spiffe://example.org/node/downstream-east";

/// A running CA and its data directory.
pub struct Ca {
    pub server: CaServer,
    pub dir: PathBuf,
}

/// An SVID and its key.
#[derive(Clone)]
pub struct Svid {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKey,
}

impl Ca {
    pub async fn start(cfg: CaConfig, dir: &Path) -> Self {
        Self {
            server: server::start(cfg).await,
            dir: dir.to_path_buf(),
        }
    }

    /// The trust bundle the CA serves now.
    pub fn bundle(&self) -> TrustBundle {
        self.server.authority.bundle().as_ref().clone()
    }

    /// Its roots as a PEM file, as an operator hands them to a downstream.
    pub fn bundle_file(&self) -> PathBuf {
        let path = self.dir.join("bundle.pem");
        std::fs::write(&path, to_pem(&self.bundle().x509_authorities)).unwrap();
        path
    }

    /// A join token (with `alias` as node alias) and the agent ID it gives.
    pub async fn token(&self, alias: Option<&str>) -> (String, SpiffeId) {
        let alias = alias.map(|a| a.parse().unwrap());
        let (token, rec) = join_token::generate(SystemTime::now(), Duration::from_secs(600), alias);
        self.server.store.create_join_token(&rec).await.unwrap();
        (
            token,
            join_token::agent_id(&TD.parse().unwrap(), &rec.id).unwrap(),
        )
    }

    /// The entry that lets the holder of [`ALIAS`] run a downstream CA.
    pub async fn downstream_entry(&self) {
        let mut e = NewEntry::new(
            format!("spiffe://{TD}/downstream/east").parse().unwrap(),
            ALIAS.parse().unwrap(),
            vec![Selector::new("join_token", &format!("alias:{ALIAS}")).unwrap()],
        );
        e.downstream = true;
        self.server.store.create_entry(e).await.unwrap();
    }

    /// An agent attested with `token`.
    pub async fn agent(&self, token: &str) -> Svid {
        let key = PrivateKey::generate_p256().unwrap();
        let mut c = node_client(self.server.node_addr, &self.bundle(), None).await;
        let req = AttestRequest {
            attestation_type: "join_token".into(),
            payload: token.as_bytes().to_vec(),
            csr: csr(&key),
        };
        let svid = c.attest(req).await.unwrap().into_inner().svid.unwrap();
        Svid {
            chain: svid
                .cert_chain
                .into_iter()
                .map(CertificateDer::from)
                .collect(),
            key,
        }
    }

    /// A fresh agent and the SVID of workload `name` it serves.
    pub async fn workload(&self, name: &str) -> Svid {
        let (token, agent_id) = self.token(None).await;
        let agent = self.agent(&token).await;
        let entry = NewEntry::new(
            format!("spiffe://{TD}/{name}").parse().unwrap(),
            agent_id,
            vec![Selector::parse("unix:uid:1000").unwrap()],
        );
        let entry = self.server.store.create_entry(entry).await.unwrap();
        let key = PrivateKey::generate_p256().unwrap();
        let creds = ClientSvid {
            chain: &agent.chain,
            key: &agent.key,
        };
        let mut c = node_client(self.server.node_addr, &self.bundle(), Some(creds)).await;
        let req = SignX509SvidsRequest {
            requests: vec![SvidRequest {
                entry_id: entry.id,
                csr: csr(&key),
                ttl_seconds: 0,
            }],
        };
        let mut results = c.sign_x509_svids(req).await.unwrap().into_inner().results;
        match results.pop().unwrap().result.unwrap() {
            svid_result::Result::Svid(s) => Svid {
                chain: s.cert_chain.into_iter().map(CertificateDer::from).collect(),
                key,
            },
            svid_result::Result::Error(e) => panic!("workload SVID refused: {e:?}"),
        }
    }
}

/// The config of a CA below `upstream`, attesting with `token`.
pub fn downstream_config(upstream: &Ca, token: &str, dir: &Path) -> CaConfig {
    let mut meshid = MeshidUpstreamConfig::new(
        upstream.server.node_addr.to_string(),
        upstream.bundle_file(),
    );
    meshid.join_token = Some(JoinToken::new(token));
    CaConfig {
        upstream: Some(UpstreamConfig::meshid(meshid)),
        ..server::config(dir)
    }
}

/// `openssl verify -x509_strict -CAfile root -untrusted <chain> <leaf>`.
pub fn openssl_verify(dir: &Path, root: &Path, svid: &[CertificateDer<'static>]) {
    let (leaf, chain) = svid.split_first().unwrap();
    let leaf_path = dir.join("leaf.pem");
    let chain_path = dir.join("chain.pem");
    std::fs::write(&leaf_path, to_pem(std::slice::from_ref(leaf))).unwrap();
    std::fs::write(&chain_path, to_pem(chain)).unwrap();
    let mut cmd = std::process::Command::new("openssl");
    cmd.arg("verify")
        .arg("-x509_strict")
        .arg("-CAfile")
        .arg(root);
    if !chain.is_empty() {
        cmd.arg("-untrusted").arg(&chain_path);
    }
    let out = cmd.arg(&leaf_path).output().unwrap();
    assert!(
        out.status.success(),
        "openssl verify refused the SVID: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An mTLS handshake over loopback between `client` (trusting
/// `client_bundle`) and `server` (trusting `server_bundle`), each side
/// accepting any ID of the trust domain; returns the IDs each side saw.
pub async fn mtls(
    client: &Svid,
    client_bundle: &TrustBundle,
    server: &Svid,
    server_bundle: &TrustBundle,
) -> (SpiffeId, SpiffeId) {
    let verifier = |b: &TrustBundle| {
        let set: BundleSet = [b.clone()].into_iter().collect();
        SpiffeVerifier::builder(Arc::new(set))
            .peer(PeerMatch::TrustDomain(TD.parse().unwrap()))
            .build()
            .unwrap()
    };
    let provider = crypto::provider();
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier(server_bundle))
        .with_single_cert(server.chain.clone(), crypto::private_key_der(&server.key))
        .unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier(client_bundle))
        .with_client_auth_cert(client.chain.clone(), crypto::private_key_der(&client.key))
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let accept = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        peer_spiffe_id(tls.get_ref().1.peer_certificates().unwrap()).unwrap()
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client_cfg))
        .connect(ServerName::try_from("peer.invalid").unwrap(), tcp)
        .await
        .unwrap();
    let seen_by_client = peer_spiffe_id(tls.get_ref().1.peer_certificates().unwrap()).unwrap();
    (seen_by_client, accept.await.unwrap())
}

/// An upstream CA and a downstream CA attested to it with a one-time
/// token, under one temp dir.
pub struct Pair {
    pub dir: tempfile::TempDir,
    pub upstream: Ca,
    /// The upstream's config, to start it again.
    pub upstream_config: CaConfig,
    pub downstream: Ca,
    /// The downstream's config (with the used token), to start it again.
    pub downstream_config: CaConfig,
}

impl Pair {
    /// Starts the upstream on `upstream` (given the default config of its
    /// data dir), creates the downstream entry and a token with [`ALIAS`],
    /// and starts the downstream with it.
    pub async fn start(upstream: impl FnOnce(CaConfig) -> CaConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let up_dir = dir.path().join("upstream");
        let upstream_config = upstream(server::config(&up_dir));
        let up = Ca::start(upstream_config.clone(), &up_dir).await;
        up.downstream_entry().await;
        let (token, _) = up.token(Some(ALIAS)).await;
        let down_dir = dir.path().join("downstream");
        let downstream_config = downstream_config(&up, &token, &down_dir);
        let downstream = Ca::start(downstream_config.clone(), &down_dir).await;
        Self {
            dir,
            upstream: up,
            upstream_config,
            downstream,
            downstream_config,
        }
    }

    /// The upstream's roots as a PEM file (for `openssl verify -CAfile`).
    pub fn root_file(&self) -> PathBuf {
        let root = self.dir.path().join("root.pem");
        std::fs::write(&root, to_pem(&self.upstream.bundle().x509_authorities)).unwrap();
        root
    }

    /// The downstream's current intermediate.
    pub fn intermediate(&self) -> CertificateDer<'static> {
        self.downstream.server.authority.load().cert_chain()[0].clone()
    }
}
