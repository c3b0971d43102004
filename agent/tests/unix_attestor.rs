//! The unix attestor against real processes on a real Unix socket, and
//! against fake /proc trees with hostile content.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use meshid_agent::attestor::{
    AttestError, NameResolver, PeerInfo, ProcessIdentity, UnixAttestor, UnixAttestorConfig,
    WorkloadAttestor,
};
use meshid_identity::Selector;
use sha2::{Digest, Sha256};
use tokio::net::{UnixListener, UnixStream};

fn sel(value: &str) -> Selector {
    Selector::new("unix", value).unwrap()
}

fn hashing() -> UnixAttestor {
    UnixAttestor::new(&UnixAttestorConfig {
        hash_executables: true,
        ..UnixAttestorConfig::default()
    })
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// A socket in a directory anyone may reach (children may run as nobody).
fn listen(dir: &Path) -> (UnixListener, PathBuf) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    (listener, path)
}

/// Starts `prefix… python3 -c CLIENT socket`: the child connects, prints
/// the real path of its interpreter, then waits for stdin to close (or
/// exits at once with `exit_now`).
fn spawn_client(prefix: &[&str], socket: &Path, exit_now: bool) -> (Child, String) {
    let script = "import os,socket,sys\n\
        s=socket.socket(socket.AF_UNIX)\n\
        s.connect(sys.argv[1])\n\
        print(os.path.realpath(sys.executable), flush=True)\n\
        if sys.argv[2] != 'exit': sys.stdin.read()\n";
    let mut args: Vec<&str> = prefix.to_vec();
    args.extend([python(), "-c", script]);
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..])
        .arg(socket)
        .arg(if exit_now { "exit" } else { "wait" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_owned())
}

#[tokio::test]
async fn own_process_gets_uid_gid_path_and_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, path) = listen(dir.path());
    let _client = UnixStream::connect(&path).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();

    let peer = PeerInfo::from_stream(&server).unwrap();
    assert_eq!(peer.pid as u32, std::process::id());
    assert_eq!(peer.uid, nix::unistd::geteuid().as_raw());
    assert_eq!(peer.gid, nix::unistd::getegid().as_raw());
    assert!(peer.start_time.is_some());

    let selectors = hashing().attest(&peer).await.unwrap();
    let exe = std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap();
    let sha = hex::encode(Sha256::digest(std::fs::read(&exe).unwrap()));
    for want in [
        format!("uid:{}", peer.uid),
        format!("gid:{}", peer.gid),
        format!("path:{}", exe.display()),
        format!("sha256:{sha}"),
    ] {
        assert!(
            selectors.contains(&sel(&want)),
            "{want} not in {selectors:?}"
        );
    }
    if let Some(user) = nix::unistd::User::from_uid(peer.uid.into()).unwrap() {
        assert!(selectors.contains(&sel(&format!("user:{}", user.name))));
    }

    // Without hashing there is no sha256 selector.
    let plain = UnixAttestor::new(&UnixAttestorConfig::default())
        .attest(&peer)
        .await
        .unwrap();
    assert!(plain.iter().all(|s| !s.value().starts_with("sha256:")));
    assert!(peer.process().unwrap().still_same());
}

#[tokio::test]
async fn child_process_is_attested_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, path) = listen(dir.path());
    let (mut child, interpreter) = spawn_client(&[], &path, false);
    let (server, _) = listener.accept().await.unwrap();

    let peer = PeerInfo::from_stream(&server).unwrap();
    assert_eq!(peer.pid as u32, child.id());
    let selectors = hashing().attest(&peer).await.unwrap();
    assert!(
        selectors.contains(&sel(&format!("path:{interpreter}"))),
        "path:{interpreter} not in {selectors:?}"
    );
    let sha = hex::encode(Sha256::digest(std::fs::read(&interpreter).unwrap()));
    assert!(selectors.contains(&sel(&format!("sha256:{sha}"))));

    let process = peer.process().unwrap();
    assert!(process.still_same());
    drop(child.stdin.take());
    child.wait().unwrap();
    assert!(!process.still_same());
}

/// Needs root (the agent's normal mode) and util-linux `setpriv`.
#[tokio::test]
async fn child_under_another_uid_is_nobody() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test switches uid with setpriv and must run as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let (listener, path) = listen(dir.path());
    let (mut child, _) = spawn_client(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ],
        &path,
        false,
    );
    let (server, _) = listener.accept().await.unwrap();
    let peer = PeerInfo::from_stream(&server).unwrap();
    assert_eq!((peer.uid, peer.gid), (65534, 65534));

    let selectors = UnixAttestor::new(&UnixAttestorConfig::default())
        .attest(&peer)
        .await
        .unwrap();
    assert!(selectors.contains(&sel("uid:65534")));
    assert!(selectors.contains(&sel("gid:65534")));
    assert!(selectors.contains(&sel("user:nobody")), "{selectors:?}");
    assert!(
        !selectors
            .iter()
            .any(|s| s.value().starts_with("supplementary_gid:"))
    );
    drop(child.stdin.take());
    child.wait().unwrap();
}

#[tokio::test]
async fn process_that_exited_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, path) = listen(dir.path());
    let (mut child, _) = spawn_client(&[], &path, true);
    let (server, _) = listener.accept().await.unwrap();
    let peer = PeerInfo::from_stream(&server).unwrap();
    child.wait().unwrap();

    let err = hashing().attest(&peer).await.unwrap_err();
    assert!(
        matches!(err, AttestError::ProcessGone { pid } if pid == peer.pid),
        "{err}"
    );
}

#[tokio::test]
async fn changed_start_time_or_uid_is_refused() {
    let me = PeerInfo {
        pid: std::process::id() as i32,
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        start_time: None,
    };
    let attestor = UnixAttestor::new(&UnixAttestorConfig::default());
    attestor.attest(&me).await.unwrap();

    let real_start = me.process().unwrap().start_time();
    let recycled = PeerInfo {
        start_time: Some(real_start + 1),
        ..me
    };
    let err = attestor.attest(&recycled).await.unwrap_err();
    assert!(matches!(err, AttestError::ProcessChanged { .. }), "{err}");

    let other_uid = PeerInfo {
        uid: me.uid.wrapping_add(1),
        ..me
    };
    let err = attestor.attest(&other_uid).await.unwrap_err();
    assert!(err.to_string().contains("effective uid"), "{err}");
}

// --- fake /proc ---

const PID: i32 = 4242;

struct FakeProc {
    dir: tempfile::TempDir,
}

impl FakeProc {
    fn new(stat: &str, status: &str, exe_content: &[u8]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(PID.to_string());
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("stat"), stat).unwrap();
        std::fs::write(p.join("status"), status).unwrap();
        let exe = dir.path().join("bin app");
        std::fs::write(&exe, exe_content).unwrap();
        symlink(&exe, p.join("exe")).unwrap();
        std::fs::write(
            dir.path().join("passwd"),
            "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("group"),
            "root:x:0:\napp:x:1000:\ndocker:x:998:app\n",
        )
        .unwrap();
        Self { dir }
    }

    fn attestor(&self) -> UnixAttestor {
        hashing()
            .with_proc_root(self.dir.path())
            .with_names(NameResolver::Files {
                passwd: self.dir.path().join("passwd"),
                group: self.dir.path().join("group"),
            })
    }

    fn exe(&self) -> PathBuf {
        self.dir.path().join("bin app")
    }
}

const GOOD_STAT: &str =
    "4242 (my) app) S 1 4242 4242 0 -1 4194304 1 0 0 0 1 1 0 0 20 0 1 0 777 1000 10\n";
const GOOD_STATUS: &str =
    "Name:\tapp\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t998 4 \n";

fn app_peer() -> PeerInfo {
    PeerInfo {
        pid: PID,
        uid: 1000,
        gid: 1000,
        start_time: Some(777),
    }
}

#[tokio::test]
async fn fake_proc_gives_exact_selectors() {
    let fake = FakeProc::new(GOOD_STAT, GOOD_STATUS, b"abc");
    let got = fake.attestor().attest(&app_peer()).await.unwrap();
    let mut want: Vec<Selector> = [
        "uid:1000".to_owned(),
        "gid:1000".to_owned(),
        "user:app".to_owned(),
        "group:app".to_owned(),
        "supplementary_gid:998".to_owned(),
        "supplementary_group:docker".to_owned(),
        "supplementary_gid:4".to_owned(),
        format!("path:{}", fake.exe().display()),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_owned(),
    ]
    .iter()
    .map(|v| sel(v))
    .collect();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn fake_proc_restart_is_detected_by_still_same() {
    let fake = FakeProc::new(GOOD_STAT, GOOD_STATUS, b"abc");
    let id = ProcessIdentity::capture(fake.dir.path(), PID, Some(777)).unwrap();
    assert!(id.still_same());
    let restarted = GOOD_STAT.replace(" 777 ", " 778 ");
    std::fs::write(fake.dir.path().join("4242/stat"), restarted).unwrap();
    assert!(!id.still_same());
    let err = fake.attestor().attest(&app_peer()).await.unwrap_err();
    assert!(
        matches!(err, AttestError::ProcessChanged { pid: PID, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn fake_proc_zombie_is_gone() {
    let zombie = GOOD_STAT.replace(") S ", ") Z ");
    let fake = FakeProc::new(&zombie, GOOD_STATUS, b"abc");
    let err = fake.attestor().attest(&app_peer()).await.unwrap_err();
    assert!(
        matches!(err, AttestError::ProcessGone { pid: PID }),
        "{err}"
    );
}

#[tokio::test]
async fn fake_proc_garbage_is_a_clear_error() {
    let huge = "x".repeat(100_000);
    let cases: Vec<(String, String, &str)> = vec![
        ("garbage".into(), GOOD_STATUS.into(), "stat"),
        (String::new(), GOOD_STATUS.into(), "stat"),
        (huge.clone(), GOOD_STATUS.into(), "stat"),
        (GOOD_STAT.into(), "Uid:\tnope\n".into(), "status"),
        (GOOD_STAT.into(), huge, "status"),
        (GOOD_STAT.into(), String::new(), "status"),
    ];
    for (stat, status, file) in cases {
        let fake = FakeProc::new(&stat, &status, b"abc");
        let err = fake.attestor().attest(&app_peer()).await.unwrap_err();
        assert!(matches!(err, AttestError::ProcParse { .. }), "{err}");
        assert!(err.to_string().contains(file), "{err}");
    }
    // Invalid UTF-8 is an error too.
    let fake = FakeProc::new(GOOD_STAT, GOOD_STATUS, b"abc");
    std::fs::write(fake.dir.path().join("4242/stat"), [0xff, 0xfe, b')']).unwrap();
    assert!(fake.attestor().attest(&app_peer()).await.is_err());
    // A missing process directory means the process is gone.
    let err = fake
        .attestor()
        .attest(&PeerInfo {
            pid: 1,
            ..app_peer()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, AttestError::ProcessGone { pid: 1 }), "{err}");
}
