//! A burst of callers whose attestation blocks (here: a name service that
//! does not answer) occupies a bounded number of threads, and every caller
//! is attested once it answers. Its own test binary, so the thread count
//! it reads is its own.
//!
//! The "name service" is a FIFO standing in for the passwd file: a lookup
//! blocks opening it until a writer comes. Several readers may share one
//! write, so a lookup may find no name; the test only needs them to end.

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, symlink};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use meshid_agent::attestor::WorkloadAttestor as _;
use meshid_agent::attestor::{NameResolver, PeerInfo, UnixAttestor, UnixAttestorConfig};
use meshid_identity::Selector;

const PID: i32 = 4242;
/// Concurrent callers (bounded: each would have been a thread).
const CALLERS: usize = 64;
/// More threads than this while the burst waits means attestation is not
/// bounded (the bound is 8; the margin covers tokio's own threads).
const MAX_NEW_THREADS: u64 = 16;
const WAIT: Duration = Duration::from_secs(20);

fn threads() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A fake /proc with process `PID` (uid 1000), and a passwd "file" that is
/// a FIFO: a lookup blocks until someone writes it.
fn fake_proc(dir: &Path) {
    let p = dir.join(PID.to_string());
    std::fs::create_dir(&p).unwrap();
    std::fs::write(
        p.join("stat"),
        "4242 (app) S 1 4242 4242 0 -1 4194304 1 0 0 0 1 1 0 0 20 0 1 0 777 1000 10\n",
    )
    .unwrap();
    std::fs::write(
        p.join("status"),
        "Name:\tapp\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t\n",
    )
    .unwrap();
    std::fs::write(dir.join("app"), b"app").unwrap();
    symlink(dir.join("app"), p.join("exe")).unwrap();
    nix::unistd::mkfifo(&dir.join("passwd"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::fs::write(dir.join("group"), "app:x:1000:\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_blocked_attestations_uses_a_bounded_number_of_threads() {
    let dir = tempfile::tempdir().unwrap();
    fake_proc(dir.path());
    let attestor = Arc::new(
        UnixAttestor::new(&UnixAttestorConfig::default())
            .with_proc_root(dir.path())
            .with_names(NameResolver::Files {
                passwd: dir.path().join("passwd"),
                group: dir.path().join("group"),
            }),
    );
    let peer = PeerInfo {
        pid: PID,
        uid: 1000,
        gid: 1000,
        start_time: Some(777),
    };
    let before = threads();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let attestor = Arc::clone(&attestor);
            tokio::spawn(async move { attestor.attest(&peer).await })
        })
        .collect();

    // Wait until the bound is reached (8 lookups blocked), then a little
    // longer so an unbounded pool would have started its threads too.
    meshid_tests::eventually_async("8 blocked lookups (attestations started)", WAIT, || async {
        (threads() >= before + 8).then_some(())
    })
    .await;
    // Not a wait for an event: the window in which extra threads must not
    // appear.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = threads();

    // The name service answers: every opener of the FIFO gets a writer.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (fifo, stop) = (dir.path().join("passwd"), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                // Opening for writing waits for a reader; a nonblocking
                // open fails (ENXIO) while there is none, so poll.
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(nix::libc::O_NONBLOCK)
                    .open(&fifo)
                {
                    Ok(mut f) => {
                        let _ = f.write_all(b"app:x:1000:1000::/:/bin/sh\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        })
    };
    for t in tasks {
        let selectors = tokio::time::timeout(WAIT, t)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            selectors.contains(&Selector::new("unix", "uid:1000").unwrap()),
            "{selectors:?}"
        );
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    // Checked once every lookup has ended: the runtime would otherwise
    // wait for the blocked threads forever when the assertion fails.
    assert!(
        during <= before + MAX_NEW_THREADS,
        "{CALLERS} blocked attestations started {} threads",
        during - before
    );
}
