//! Tampering with the audit log directly in the database, on SQLite and
//! PostgreSQL: an edited field, a deleted record, two records' seqs
//! swapped, a deleted tail, a record added behind the store's back, an
//! edited checkpoint and a rewritten (re-hashed) chain. `audit::verify`
//! must name the first bad record of each and pass the untouched chain.
//!
//! PostgreSQL comes from `MESHID_TEST_POSTGRES_URL` (see
//! `meshid_tests::postgres`); without it that half prints a note and passes
//! (fails in CI).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_ca::audit::{self, VerifyReport};
use meshid_ca::authority::{Authority, AuthorityConfig};
use meshid_ca::keymanager::MemoryKeyManager;
use meshid_ca::store::{
    self, AuditEvent, AuditFilter, AuditRecord, GENESIS, Store, StoreUrl, record_hash,
};
use meshid_ca::upstream::SelfSigned;
use meshid_identity::TrustDomain;
use meshid_tests::postgres::Database;
use sqlx::Connection;

/// Records in each chain under test.
const RECORDS: i64 = 10;
/// The seq of the one checkpoint.
const CHECKPOINT: i64 = 5;

fn td() -> TrustDomain {
    "example.org".parse().unwrap()
}

/// A store holding a valid chain, the raw database behind it, and the
/// CA that signed its checkpoint.
struct Chain {
    store: Arc<dyn Store>,
    url: String,
    authority: Authority,
    _dirs: (tempfile::TempDir, Option<Database>),
}

enum Driver {
    Sqlite,
    Postgres,
}

impl Chain {
    /// A fresh store of `driver`; `None` for PostgreSQL without a server.
    async fn new(driver: &Driver) -> Option<Chain> {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg) = match driver {
            Driver::Sqlite => (
                format!("sqlite://{}", dir.path().join("ca.db").display()),
                None,
            ),
            Driver::Postgres => {
                let db = Database::fresh("audit_tamper")?;
                (db.url.clone(), Some(db))
            }
        };
        let store = store::open(&StoreUrl::parse(&url).unwrap()).await.unwrap();
        for i in 1..=RECORDS {
            store
                .append_audit(AuditEvent {
                    actor: format!("uid:{}", 1000 + i),
                    action: "entry.create".into(),
                    tenant: if i % 2 == 0 {
                        "payments".into()
                    } else {
                        String::new()
                    },
                    target: format!("entry-{i}"),
                    before: String::new(),
                    after: format!(r#"{{"spiffe_id":"spiffe://example.org/w/{i}"}}"#),
                    result: "ok".into(),
                })
                .await
                .unwrap();
        }
        let authority = Authority::new(
            AuthorityConfig::new(td()),
            &SelfSigned::new(dir.path(), Duration::from_secs(86400)),
            &MemoryKeyManager::new(),
            SystemTime::now(),
        )
        .unwrap();
        let at = records(store.as_ref()).await[CHECKPOINT as usize - 1].hash;
        let cp = audit::sign_checkpoint(&authority, CHECKPOINT, at, SystemTime::now()).unwrap();
        store.put_audit_checkpoint(&cp).await.unwrap();
        Some(Chain {
            store,
            url,
            authority,
            _dirs: (dir, pg),
        })
    }

    async fn verify(&self) -> VerifyReport {
        audit::verify(self.store.as_ref(), &td(), self.authority.bundle())
            .await
            .unwrap()
    }

    /// Runs `sql` on the database directly.
    async fn exec(&self, sql: &str) {
        if self.url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
        } else {
            let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
        }
    }

    /// A byte string as an SQL literal of this database.
    fn blob(&self, b: &[u8]) -> String {
        if self.url.starts_with("sqlite:") {
            format!("X'{}'", hex::encode(b))
        } else {
            format!("decode('{}', 'hex')", hex::encode(b))
        }
    }

    /// Re-hashes the records in `seqs` (each linked to the one before), as
    /// an attacker who knows the hash function would after an edit, and
    /// moves the head to the last record's hash.
    async fn rehash(&self, seqs: std::ops::RangeInclusive<i64>) {
        let mut prev = GENESIS;
        let mut sql = String::new();
        for r in records(self.store.as_ref()).await {
            if seqs.contains(&r.seq) {
                let at_ms =
                    r.at.duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap()
                        .as_millis() as i64;
                let hash = record_hash(&prev, r.seq, at_ms, &r.event);
                sql.push_str(&format!(
                    "UPDATE audit_log SET prev_hash = {}, hash = {} WHERE seq = {};\n",
                    self.blob(&prev),
                    self.blob(&hash),
                    r.seq
                ));
                prev = hash;
            } else {
                prev = r.hash;
            }
        }
        sql.push_str(&format!(
            "UPDATE audit_head SET hash = {} WHERE id = 1;",
            self.blob(&prev)
        ));
        self.exec(&sql).await;
    }

    /// Appends a correctly chained record directly in the database, the
    /// head row left behind.
    async fn insert_behind_the_head(&self) -> i64 {
        let last = records(self.store.as_ref()).await.pop().unwrap();
        let (seq, at_ms) = (last.seq + 1, 1_800_000_000_000);
        let event = AuditEvent {
            actor: "uid:0".into(),
            action: "entry.create".into(),
            target: "x".into(),
            result: "ok".into(),
            ..AuditEvent::default()
        };
        let hash = record_hash(&last.hash, seq, at_ms, &event);
        self.exec(&format!(
            "INSERT INTO audit_log (seq, at_ms, actor, action, tenant, target, before_json, \
             after_json, result, prev_hash, hash) VALUES ({seq}, {at_ms}, 'uid:0', \
             'entry.create', '', 'x', '', '', 'ok', {}, {})",
            self.blob(&last.hash),
            self.blob(&hash)
        ))
        .await;
        seq
    }
}

/// Every record, in seq order.
async fn records(store: &dyn Store) -> Vec<AuditRecord> {
    store
        .list_audit(&AuditFilter::default(), 0, 1000)
        .await
        .unwrap()
}

/// Asserts the report names `seq` as the first bad record, for a reason
/// starting with `reason`.
fn assert_bad(case: &str, report: &VerifyReport, seq: i64, reason: &str) {
    let p = report
        .problem
        .as_ref()
        .unwrap_or_else(|| panic!("{case}: verify passed a tampered chain: {report:?}"));
    assert_eq!(p.seq, seq, "{case}: {report:?}");
    assert!(p.reason.starts_with(reason), "{case}: {:?}", p.reason);
}

async fn tampering_is_named(driver: Driver) {
    // The untouched chain passes, its checkpoint counted.
    let Some(chain) = Chain::new(&driver).await else {
        return;
    };
    let report = chain.verify().await;
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.records, report.last_seq), (RECORDS, RECORDS));
    assert_eq!(report.checkpoints, 1);

    // (case, SQL, first bad seq, reason)
    type Case = (&'static str, fn(&Chain) -> String, i64, &'static str);
    let cases: [Case; 6] = [
        (
            "edit a field",
            |_| "UPDATE audit_log SET target = 'entry-x' WHERE seq = 4".into(),
            4,
            "edited: hash mismatch",
        ),
        (
            "edit the result",
            |_| "UPDATE audit_log SET result = 'denied: no' WHERE seq = 9".into(),
            9,
            "edited: hash mismatch",
        ),
        (
            "delete a record",
            |_| "DELETE FROM audit_log WHERE seq = 6".into(),
            6,
            "deleted: seq 6 missing",
        ),
        (
            "swap two records' seq",
            |_| {
                "UPDATE audit_log SET seq = -7 WHERE seq = 7;
                 UPDATE audit_log SET seq = 7 WHERE seq = 8;
                 UPDATE audit_log SET seq = 8 WHERE seq = -7;"
                    .into()
            },
            7,
            "reordered: prev_hash of 7 is not the hash of 6",
        ),
        (
            "delete the tail",
            |_| "DELETE FROM audit_log WHERE seq >= 9".into(),
            9,
            "truncated: head says 10, last record is 8",
        ),
        (
            "forge the checkpoint",
            |c| {
                format!(
                    "UPDATE audit_checkpoints SET hash = {} WHERE seq = {CHECKPOINT}",
                    c.blob(&[7; 32])
                )
            },
            CHECKPOINT,
            "checkpoint at 5 does not match",
        ),
    ];
    for (case, sql, seq, reason) in cases {
        let Some(chain) = Chain::new(&driver).await else {
            return;
        };
        chain.exec(&sql(&chain)).await;
        assert_bad(case, &chain.verify().await, seq, reason);
    }

    // An edit covered by re-hashing the whole rest of the chain and the
    // head is caught by the signed checkpoint after it.
    let chain = Chain::new(&driver).await.unwrap();
    chain
        .exec("UPDATE audit_log SET after_json = '{}' WHERE seq = 3")
        .await;
    chain.rehash(3..=RECORDS).await;
    assert_bad(
        "rewrite the chain",
        &chain.verify().await,
        CHECKPOINT,
        "checkpoint at 5 does not match: the chain was rewritten",
    );
    // An edited record re-hashed without its successors: the next one no
    // longer links to it.
    let chain = Chain::new(&driver).await.unwrap();
    chain
        .exec("UPDATE audit_log SET actor = 'uid:0' WHERE seq = 8")
        .await;
    chain.rehash(8..=8).await;
    assert_bad(
        "edit and re-hash one record",
        &chain.verify().await,
        9,
        "reordered: prev_hash of 9 is not the hash of 8",
    );
    // A record added without moving the head.
    let chain = Chain::new(&driver).await.unwrap();
    let seq = chain.insert_behind_the_head().await;
    assert_bad(
        "add a record behind the store's back",
        &chain.verify().await,
        seq,
        "inserted: head says 10, last record is 11",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tampering_is_named() {
    tampering_is_named(Driver::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tampering_is_named() {
    tampering_is_named(Driver::Postgres).await;
}

/// A checkpoint signed by a CA the bundle no longer holds is reported, not
/// failed; an empty store verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_checkpoint_is_a_note_and_an_empty_chain_passes() {
    let chain = Chain::new(&Driver::Sqlite).await.unwrap();
    let other = tempfile::tempdir().unwrap();
    let stranger = Authority::new(
        AuthorityConfig::new(td()),
        &SelfSigned::new(other.path(), Duration::from_secs(86400)),
        &MemoryKeyManager::new(),
        SystemTime::now(),
    )
    .unwrap();
    let head = records(chain.store.as_ref()).await[7].hash;
    let cp = audit::sign_checkpoint(&stranger, 8, head, SystemTime::now()).unwrap();
    chain.store.put_audit_checkpoint(&cp).await.unwrap();
    let report = chain.verify().await;
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.checkpoints, 1);
    assert_eq!(report.untrusted_checkpoints, 1);
    assert!(
        report
            .untrusted_note
            .as_deref()
            .unwrap()
            .contains("signed by a key the bundle no longer trusts"),
        "{report:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("empty.db").display());
    let empty = store::open(&StoreUrl::parse(&url).unwrap()).await.unwrap();
    let report = audit::verify(empty.as_ref(), &td(), chain.authority.bundle())
        .await
        .unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.records, 0);
}
