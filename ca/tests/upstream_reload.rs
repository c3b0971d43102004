//! Hot reload of an enterprise intermediate: a running CA on openssl-made
//! files picks up a replacement, validates it as at start-up, signs new
//! SVIDs with it at once (under the same root; a new root is published
//! first and signs after the propagation delay) and keeps the SVIDs of the
//! old one valid; an
//! invalid replacement is refused (old one kept, metric set, log says why);
//! a Kubernetes Secret's `..data` symlink swap and a chain written before
//! its key are handled.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use meshid_ca::config::{CaConfig, UpstreamConfig};
use meshid_ca::server::CaServer;
use meshid_identity::x509::pem_certs;

use meshid_runtime::clock::{ManualClock, SharedClock};
use rustls_pki_types::CertificateDer;

#[path = "support/server.rs"]
mod server;
#[path = "rotation/support.rs"]
mod support;

use meshid_tests::eventually::eventually_async;
use meshid_tests::pki::{Alg, Pki};

const WAIT: Duration = Duration::from_secs(10);
const DAY: Duration = Duration::from_secs(86400);

/// Writes `text` to `path` by renaming a sibling over it (what PKI
/// tooling does), so a poll never reads half a file.
fn replace(path: &Path, text: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn der(pki: &Pki, name: &str) -> CertificateDer<'static> {
    pem_certs(&String::from_utf8(read(&pki.cert(name))).unwrap())
        .unwrap()
        .remove(0)
}

/// A CA on `up`, polling its files every 50 ms.
async fn start(dir: &Path, up: UpstreamConfig) -> CaServer {
    start_clocked(dir, up, meshid_runtime::clock::system()).await
}

/// [`start`] with the CA's rotation deciding by `clock`.
async fn start_clocked(dir: &Path, up: UpstreamConfig, clock: SharedClock) -> CaServer {
    let up = UpstreamConfig {
        watch_interval: Duration::from_millis(50),
        ..up
    };
    let cfg = CaConfig {
        upstream: Some(up),
        ..server::config(&dir.join("ca-data"))
    };
    server::start_with_clock(cfg, clock).await
}

/// The files the CA reads: `chain.pem`, `key.pem`, `root.pem`, holding
/// `mesh` and `root` of `pki`.
fn install(pki: &Pki, mesh: &str, root: &str) -> UpstreamConfig {
    replace(&pki.dir.join("root.pem"), &read(&pki.cert(root)));
    replace(&pki.dir.join("key.pem"), &read(&pki.key(mesh)));
    replace(&pki.dir.join("chain.pem"), &read(&pki.cert(mesh)));
    UpstreamConfig {
        root_file: Some(pki.dir.join("root.pem")),
        ..UpstreamConfig::files(pki.dir.join("chain.pem"), pki.dir.join("key.pem"))
    }
}

/// An SVID signed now by the CA's current authority.
fn sign(ca: &CaServer) -> Vec<CertificateDer<'static>> {
    support::sign(ca, SystemTime::now())
}

/// Whether `svid` verifies against the bundle the CA serves now.
fn verifies(ca: &CaServer, svid: &[CertificateDer<'static>]) -> bool {
    support::verifies(ca, svid, SystemTime::now())
}

/// Waits until the CA signs with `intermediate`.
async fn signs_with(ca: &CaServer, intermediate: &CertificateDer<'static>) {
    eventually_async("the CA signs with the new intermediate", WAIT, || async {
        (ca.authority.load().cert_chain()[0] == *intermediate).then_some(())
    })
    .await;
}

fn metric(ca: &CaServer, line: &str) -> bool {
    ca.metrics.encode().lines().any(|l| l == line)
}

/// Waits until every one of `lines` is in the CA's metrics. The reloader
/// swaps the authority first and updates its metrics just after, so a test
/// that has seen the swap must wait for them rather than race the poll task.
async fn metrics_show(ca: &CaServer, lines: &[&str]) {
    eventually_async(&format!("metrics show {lines:?}"), WAIT, || async {
        lines.iter().all(|l| metric(ca, l)).then_some(())
    })
    .await;
}

async fn sequence(ca: &CaServer) -> i64 {
    let td = ca.authority.load().trust_domain().clone();
    ca.store.get_bundle(&td).await.unwrap().unwrap().sequence
}

#[tokio::test]
async fn a_replaced_intermediate_signs_new_svids_at_once_and_old_ones_stay_valid() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.root("root", Alg::P256);
    pki.mesh_ca("mesh-a", "root", Alg::P256, "");
    pki.mesh_ca("mesh-b", "root", Alg::Rsa(2048), "");
    let ca = start(dir.path(), install(&pki, "mesh-a", "root")).await;
    let old = sign(&ca);
    assert_eq!(old[1], der(&pki, "mesh-a"));
    let seq = sequence(&ca).await;

    install(&pki, "mesh-b", "root");
    signs_with(&ca, &der(&pki, "mesh-b")).await;
    let new = sign(&ca);
    assert_eq!(
        new[1],
        der(&pki, "mesh-b"),
        "new SVIDs chain to the new one"
    );
    assert!(verifies(&ca, &new));
    assert!(verifies(&ca, &old), "SVIDs of the old one stay valid");
    let serving = server::serving_chain(&ca).await;
    assert_eq!(
        serving[1],
        der(&pki, "mesh-b"),
        "the node API serves from it too"
    );
    assert_eq!(ca.authority.bundle().x509_authorities, [der(&pki, "root")]);
    assert_eq!(
        sequence(&ca).await,
        seq,
        "same root: the bundle is unchanged"
    );
    // The admin API's GetAuthority reads the key journal: the new chain.
    let slots = ca.store.list_key_slots().await.unwrap();
    let active = slots
        .iter()
        .find(|k| {
            k.kind == meshid_ca::store::KeyKind::X509
                && k.state == meshid_ca::store::SlotState::Active
        })
        .unwrap();
    let journal = pem_certs(&active.public_pem).unwrap();
    assert_eq!(journal, [der(&pki, "mesh-b"), der(&pki, "root")]);
    metrics_show(
        &ca,
        &[
            "meshid_ca_upstream_reloads_total{result=\"applied\"} 1",
            "meshid_ca_upstream_reload_failing 0",
        ],
    )
    .await;
    let expiry = ca.authority.load().not_after();
    let secs = expiry
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(metric(
        &ca,
        &format!("meshid_ca_cert_expiry_timestamp_seconds {secs}")
    ));
    ca.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_new_root_is_published_before_it_signs_and_leaves_once_the_old_svids_expired() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.root("root-1", Alg::P256);
    pki.root("root-2", Alg::P256);
    pki.mesh_ca("mesh-1", "root-1", Alg::P256, "");
    pki.mesh_ca("mesh-2", "root-2", Alg::P256, "");
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let ca = start_clocked(dir.path(), install(&pki, "mesh-1", "root-1"), clock.clone()).await;
    let old = sign(&ca);
    let seq = sequence(&ca).await;

    // The new root is published at once; the old intermediate still signs
    // (agents learn root-2 at their next sync, before any SVID chains to it).
    install(&pki, "mesh-2", "root-2");
    eventually_async("root-2 is published", WAIT, || async {
        ca.authority
            .bundle()
            .x509_authorities
            .contains(&der(&pki, "root-2"))
            .then_some(())
    })
    .await;
    let published = [der(&pki, "root-1"), der(&pki, "root-2")];
    assert_eq!(ca.authority.bundle().x509_authorities, published);
    assert_eq!(sequence(&ca).await, seq + 1);
    assert_eq!(ca.authority.load().cert_chain()[0], der(&pki, "mesh-1"));
    assert_eq!(server::serving_chain(&ca).await[1], der(&pki, "mesh-1"));

    // After the propagation delay (30s) it signs.
    clock.advance(Duration::from_secs(31));
    ca.engine.tick().await.unwrap();
    signs_with(&ca, &der(&pki, "mesh-2")).await;
    let roots = [der(&pki, "root-2"), der(&pki, "root-1")];
    assert_eq!(ca.authority.bundle().x509_authorities, roots);
    assert_eq!(sequence(&ca).await, seq + 2);
    assert!(verifies(&ca, &old) && verifies(&ca, &sign(&ca)));
    assert_eq!(server::serving_chain(&ca).await[1], der(&pki, "mesh-2"));

    // Nothing changes before the old SVIDs (1 h) have expired...
    clock.advance(Duration::from_secs(3500));
    ca.engine.tick().await.unwrap();
    assert_eq!(ca.authority.bundle().x509_authorities, roots);
    // ...then the old root is dropped and the sequence moves again.
    clock.advance(Duration::from_secs(101));
    ca.engine.tick().await.unwrap();
    assert_eq!(
        ca.authority.bundle().x509_authorities,
        [der(&pki, "root-2")]
    );
    assert_eq!(sequence(&ca).await, seq + 3);
    assert!(!verifies(&ca, &old));
    ca.shutdown().await.unwrap();
}

/// The log lines of the CA, for asserting what it says.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// This thread's log lines from now until the guard is dropped.
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn invalid_replacements_are_refused_with_the_start_up_message_and_the_old_one_kept() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.root("root", Alg::P256);
    pki.root("other-root", Alg::P256);
    pki.mesh_ca("mesh", "root", Alg::P256, "");
    pki.mesh_ca("mesh-2", "root", Alg::P256, "");
    pki.mesh_ca("foreign", "other-root", Alg::P256, "");
    let now = SystemTime::now();
    let ext = "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign";
    pki.ca_between("expired", "root", Alg::P256, ext, now - 10 * DAY, now - DAY);
    let ca = start(dir.path(), install(&pki, "mesh", "root")).await;
    let mesh = der(&pki, "mesh");

    let cases: [(&str, &str, &str); 3] = [
        // (certificate, key, what the log says)
        (
            "foreign",
            "foreign",
            "neither in the chain nor among the roots",
        ),
        ("mesh-2", "mesh", "does not match"),
        ("expired", "expired", "expired"),
    ];
    for (n, (cert, key, why)) in cases.into_iter().enumerate() {
        replace(&pki.dir.join("key.pem"), &read(&pki.key(key)));
        replace(&pki.dir.join("chain.pem"), &read(&pki.cert(cert)));
        let rejected = format!(
            "meshid_ca_upstream_reloads_total{{result=\"rejected\"}} {}",
            n + 1
        );
        metrics_show(&ca, &[&rejected, "meshid_ca_upstream_reload_failing 1"]).await;
        assert_eq!(
            ca.authority.load().cert_chain()[0],
            mesh,
            "{cert}: old one kept"
        );
        assert_eq!(sign(&ca)[1], mesh);
        let text = logs.text();
        let line = text
            .lines()
            .rfind(|l| l.contains("replaced upstream intermediate is refused"))
            .unwrap_or_else(|| panic!("no refusal logged for {cert}: {text}"));
        assert!(
            line.contains("ERROR") && line.contains(why),
            "{cert}: {line}"
        );
    }
    assert!(!metric(
        &ca,
        "meshid_ca_upstream_reloads_total{result=\"applied\"} 1"
    ));
    // Putting the old files back clears the alarm.
    install(&pki, "mesh", "root");
    eventually_async("the alarm clears", WAIT, || async {
        metric(&ca, "meshid_ca_upstream_reload_failing 0").then_some(())
    })
    .await;
    ca.shutdown().await.unwrap();
}

/// A Kubernetes Secret volume as the kubelet writes it: the files in a
/// timestamped directory, `..data` a symlink to it, and each file name a
/// symlink through `..data`.
fn secret_version(dir: &Path, version: &str, pki: &Pki, mesh: &str, root: &str) {
    let v = dir.join(version);
    std::fs::create_dir(&v).unwrap();
    std::fs::write(v.join("tls.crt"), read(&pki.cert(mesh))).unwrap();
    std::fs::write(v.join("tls.key"), read(&pki.key(mesh))).unwrap();
    std::fs::write(v.join("ca.crt"), read(&pki.cert(root))).unwrap();
}

#[tokio::test]
async fn a_kubernetes_secret_symlink_swap_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.root("root", Alg::P256);
    pki.mesh_ca("mesh-a", "root", Alg::P256, "");
    pki.mesh_ca("mesh-b", "root", Alg::P256, "");
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    secret_version(&secret, "..2026_12_01_10_00_00.1", &pki, "mesh-a", "root");
    std::os::unix::fs::symlink("..2026_12_01_10_00_00.1", secret.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key", "ca.crt"] {
        std::os::unix::fs::symlink(Path::new("..data").join(f), secret.join(f)).unwrap();
    }
    let ca = start(dir.path(), UpstreamConfig::dir(&secret)).await;
    assert_eq!(sign(&ca)[1], der(&pki, "mesh-a"));

    // The kubelet's atomic update: a new version, a new link renamed over
    // `..data`, then the old version removed.
    secret_version(&secret, "..2026_12_01_11_00_00.2", &pki, "mesh-b", "root");
    std::os::unix::fs::symlink("..2026_12_01_11_00_00.2", secret.join("..data_tmp")).unwrap();
    std::fs::rename(secret.join("..data_tmp"), secret.join("..data")).unwrap();
    std::fs::remove_dir_all(secret.join("..2026_12_01_10_00_00.1")).unwrap();
    signs_with(&ca, &der(&pki, "mesh-b")).await;
    assert_eq!(sign(&ca)[1], der(&pki, "mesh-b"));
    ca.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_chain_written_before_its_key_ends_with_the_new_pair_taken() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.root("root", Alg::P256);
    pki.mesh_ca("mesh-a", "root", Alg::P256, "");
    pki.mesh_ca("mesh-b", "root", Alg::P256, "");
    let ca = start(dir.path(), install(&pki, "mesh-a", "root")).await;

    // The certificate lands first: with the old key it is refused...
    replace(&pki.dir.join("chain.pem"), &read(&pki.cert("mesh-b")));
    eventually_async("the half-written pair is refused", WAIT, || async {
        metric(&ca, "meshid_ca_upstream_reload_failing 1").then_some(())
    })
    .await;
    assert_eq!(ca.authority.load().cert_chain()[0], der(&pki, "mesh-a"));
    // ...and taken once its key follows.
    replace(&pki.dir.join("key.pem"), &read(&pki.key("mesh-b")));
    signs_with(&ca, &der(&pki, "mesh-b")).await;
    metrics_show(
        &ca,
        &[
            "meshid_ca_upstream_reload_failing 0",
            "meshid_ca_upstream_reloads_total{result=\"applied\"} 1",
        ],
    )
    .await;
    ca.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_intermediate_close_to_expiry_with_no_successor_warns_at_most_hourly() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.root("root", Alg::P256);
    pki.mesh_ca("mesh", "root", Alg::P256, "");
    let now = SystemTime::now();
    let clock = Arc::new(ManualClock::new(now));
    let ca = start_clocked(dir.path(), install(&pki, "mesh", "root"), clock.clone()).await;
    let warned = || {
        logs.text()
            .matches("an active CA key expires soon and no successor is prepared")
            .count()
    };
    ca.engine.tick().await.unwrap();
    assert_eq!(warned(), 0, "20 days left: no warning");

    // 8 of its 20 days left: within warn_before (30 days, clamped to half
    // its life), and nobody replaced the files.
    clock.set(now + 12 * DAY);
    ca.engine.tick().await.unwrap();
    ca.engine.tick().await.unwrap();
    assert_eq!(warned(), 1, "{}", logs.text());
    clock.advance(Duration::from_secs(3601));
    ca.engine.tick().await.unwrap();
    assert_eq!(warned(), 2, "again after an hour");
    ca.shutdown().await.unwrap();
}
