//! The audit log end to end, with the real binary: admin writes through
//! `meshid` are recorded, `meshid audit list|export|verify` show and check
//! them (also offline, `--store URL --trust-domain TD`), the CA's
//! checkpoints verify, a restart and a second replica on PostgreSQL keep
//! one chain, and rows tampered with directly in the database (the
//! `sqlite3` CLI, `psql`) are named by `meshid audit verify`, which exits
//! non-zero: a forged checkpoint, a deleted tail, two records' seqs
//! swapped, a deleted record, an edited field.
//!
//! PostgreSQL comes from `MESHID_TEST_POSTGRES_URL` (see
//! `meshid_tests::postgres`).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use meshid_tests::postgres::Database;
use meshid_tests::{Cmd, TestCa, eventually_every, tempdir};

const TD: &str = "example.org";
const PARENT: &str = "spiffe://example.org/meshid/agent/join_token/0123456789abcdef";
/// Checkpoints every second; waits bounded well above that.
const AUDIT: &str = "[audit]\ncheckpoint_interval = \"1s\"\n";
const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(250);

/// Where the chain lives, and how to edit it behind the CA's back.
enum Db {
    /// The CA's default store, `<data dir>/ca.db`.
    Sqlite(PathBuf),
    Postgres(Database),
}

impl Db {
    fn url(&self) -> String {
        match self {
            Db::Sqlite(p) => format!("sqlite://{}", p.display()),
            Db::Postgres(db) => db.url.clone(),
        }
    }

    /// Runs `sql` with the database's own CLI; its output.
    fn exec(&self, sql: &str) -> String {
        match self {
            Db::Sqlite(p) => Cmd::new("sqlite3")
                .args([p.as_os_str()])
                .args([sql])
                .run_ok(),
            Db::Postgres(db) => Cmd::new("psql").args([&db.url, "-qtAc", sql]).run_ok(),
        }
    }

    /// One number `sql` selects.
    fn number(&self, sql: &str) -> i64 {
        let out = self.exec(sql);
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{sql}: {e}: {out:?}"))
    }
}

fn create_entries(ca: &TestCa, from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| {
            let id = format!("spiffe://{TD}/w/{i}");
            let e = ca.create_entry(&id, PARENT, &["unix:uid:1000"]);
            e["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// `meshid audit verify --output json` through the CA: the report.
fn verify(ca: &TestCa) -> serde_json::Value {
    let out = Cmd::meshid()
        .args(["audit", "verify", "--output", "json", "--admin-socket"])
        .args([ca.data_dir().join("admin.sock")])
        .output();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "meshid audit verify printed no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The head seq, once the CA's checkpointer has signed it and the
/// chain verifies through `ca`.
fn checkpointed(ca: &TestCa, db: &Db) -> i64 {
    let head = eventually_every("a signed checkpoint of the head", WAIT, POLL, || {
        let head = db.number("SELECT seq FROM audit_head");
        let signed = db.number("SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints");
        (head > 0 && signed == head).then_some(head)
    });
    let v = verify(ca);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["checkpoints"].as_i64().unwrap() >= 1, "{v}");
    assert_eq!(v["last_seq"], head, "{v}");
    head
}

/// `meshid audit verify` through the CA and offline on `db` must both fail,
/// naming `seq` and `reason`.
fn assert_broken(ca: &TestCa, db: &Db, case: &str, seq: i64, reason: &str) {
    let err = ca.admin_refused(&["audit", "verify"]);
    let want = format!("broken at seq {seq}: {reason}");
    assert!(err.contains(&want), "{case}: want {want:?} in:\n{err}");
    let out = Cmd::meshid()
        .args([
            "audit",
            "verify",
            "--store",
            &db.url(),
            "--trust-domain",
            TD,
        ])
        .output();
    assert!(!out.status.success(), "{case}: offline verify passed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&want),
        "{case} (offline): want {want:?} in:\n{err}"
    );
}

/// Writes, lists, exports and verifies on `ca` (whose store is `db`), then
/// tampers step by step, each step's record earlier than the last, so
/// each is the first bad one.
fn list_export_verify_and_tamper(ca: &TestCa, db: &Db) {
    let ids = create_entries(ca, 0, 8);
    ca.admin(&["entry", "update", &ids[0], "--dns-name", "w0.local"]);
    ca.admin(&["entry", "delete", &ids[1]]);
    ca.join_token();
    let head = checkpointed(ca, db);
    assert!(head >= 11, "{head} records");

    // list: the admin writes, by the socket's uid; filters.
    let listed = ca.admin_json(&["audit", "list", "--limit", "1000"]);
    let records = listed["records"].as_array().unwrap();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for a in [
        "entry.create",
        "entry.update",
        "entry.delete",
        "token.create",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let update = records
        .iter()
        .find(|r| r["action"] == "entry.update")
        .unwrap();
    assert_eq!(update["result"], "ok");
    assert!(
        update["actor"].as_str().unwrap().starts_with("uid:"),
        "{update}"
    );
    assert!(
        update["before"]["dns_names"].as_array().unwrap().is_empty(),
        "{update}"
    );
    assert_eq!(update["after"]["dns_names"][0], "w0.local");
    let by_id = ca.admin_json(&[
        "audit",
        "list",
        "--spiffe-id",
        &format!("spiffe://{TD}/w/3"),
    ]);
    assert_eq!(by_id["records"].as_array().unwrap().len(), 1, "{by_id}");
    let text = ca.admin(&["audit", "list", "--since", "1h"]);
    assert!(text.contains("entry.delete"), "{text}");

    // export: every record, one JSON object per line.
    let lines = ca.admin(&["audit", "export"]);
    let exported: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported.len() as i64, head);
    for (i, r) in exported.iter().enumerate() {
        assert_eq!(r["seq"], i as i64 + 1);
        assert_eq!(r["hash"].as_str().unwrap().len(), 64);
    }
    assert_eq!(exported[1]["prev_hash"], exported[0]["hash"]);

    // verify: sound, through the CA and offline.
    let ok = ca.admin(&["audit", "verify"]);
    assert!(ok.contains(&format!("{head} records")), "{ok}");
    let offline = Cmd::meshid()
        .args([
            "audit",
            "verify",
            "--store",
            &db.url(),
            "--trust-domain",
            TD,
        ])
        .run_ok();
    assert!(offline.contains("Audit log OK"), "{offline}");

    // A checkpoint whose signed time is moved no longer verifies; moved
    // back, the chain is sound again.
    db.exec(&format!(
        "UPDATE audit_checkpoints SET at_ms = at_ms + 1 WHERE seq = {head}"
    ));
    assert_broken(
        ca,
        db,
        "forged checkpoint",
        head,
        &format!("checkpoint at {head} does not match"),
    );
    db.exec(&format!(
        "UPDATE audit_checkpoints SET at_ms = at_ms - 1 WHERE seq = {head}"
    ));
    assert_eq!(verify(ca)["ok"], true);

    db.exec(&format!("DELETE FROM audit_log WHERE seq = {head}"));
    assert_broken(
        ca,
        db,
        "deleted tail",
        head,
        &format!("truncated: head says {head}, last record is {}", head - 1),
    );
    db.exec(
        "UPDATE audit_log SET seq = -7 WHERE seq = 7; UPDATE audit_log SET seq = 7 WHERE seq = 8; \
         UPDATE audit_log SET seq = 8 WHERE seq = -7;",
    );
    assert_broken(
        ca,
        db,
        "swapped seqs",
        7,
        "reordered: prev_hash of 7 is not the hash of 6",
    );
    db.exec("DELETE FROM audit_log WHERE seq = 5");
    assert_broken(ca, db, "deleted record", 5, "deleted: seq 5 missing");
    db.exec("UPDATE audit_log SET actor = 'uid:4242' WHERE seq = 2");
    assert_broken(ca, db, "edited field", 2, "edited: hash mismatch");
}

fn logs(tmp: &Path) -> PathBuf {
    let logs = tmp.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    logs
}

#[test]
fn sqlite_audit_log_survives_a_restart_and_names_tampering() {
    let tmp = tempdir();
    let logs = logs(tmp.path());
    let mut ca = TestCa::builder(tmp.path().join("ca"), &logs)
        .config(AUDIT)
        .start();
    let db = Db::Sqlite(ca.data_dir().join("ca.db"));
    create_entries(&ca, 100, 2);
    let before = checkpointed(&ca, &db);
    ca.stop();
    // The restarted CA goes on from the head: one chain, from seq 1.
    let ca = ca.start_again();
    list_export_verify_and_tamper(&ca, &db);
    let exported = ca.admin(&["audit", "export", "--after-seq", &before.to_string()]);
    let first: serde_json::Value = serde_json::from_str(exported.lines().next().unwrap()).unwrap();
    assert_eq!(first["seq"], before + 1);
}

#[test]
fn postgres_replicas_write_one_chain_and_tampering_is_named() {
    let Some(database) = Database::fresh("audit on two CA replicas on PostgreSQL") else {
        return;
    };
    let tmp = tempdir();
    let logs = logs(tmp.path());
    let config = |id: &str| {
        format!(
            "store = {:?}\n[ha]\nreplica_id = {id:?}\nrefresh_interval = \"1s\"\n{AUDIT}",
            database.url
        )
    };
    let a = TestCa::builder(tmp.path().join("ca-a"), &logs)
        .config(&config("ca-a"))
        .start();
    let b = TestCa::builder(tmp.path().join("ca-b"), &logs)
        .config(&config("ca-b"))
        .start();
    // Checkpoints of either replica verify once the stored bundle holds
    // both replicas' roots.
    for ca in [&a, &b] {
        eventually_every("both replicas' roots in the bundle", WAIT, POLL, || {
            (ca.bundle_certs().len() == 2).then_some(())
        });
    }
    let db = Db::Postgres(database);
    // Both replicas write at the same time; one chain, sound from either.
    std::thread::scope(|s| {
        s.spawn(|| create_entries(&a, 200, 6));
        s.spawn(|| create_entries(&b, 300, 6));
    });
    let head = checkpointed(&b, &db);
    assert!(head >= 12, "{head}");
    assert_eq!(verify(&a)["ok"], true);
    list_export_verify_and_tamper(&a, &db);
    drop(b);
}
