//! The audit chain of a running CA (in process): admin writes and
//! issuances are recorded, checkpoints are signed by the CA's checkpointer
//! and verify, `ListAudit` pages and filters, `VerifyAudit` answers; a
//! restart continues the one chain; two replicas on one PostgreSQL issuing
//! at the same time write one valid chain.
//!
//! PostgreSQL comes from `MESHID_TEST_POSTGRES_URL` (see
//! `meshid_tests::postgres`).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use meshid_ca::audit;
use meshid_ca::config::{AuditConfig, CaConfig, HaConfig};
use meshid_ca::rotation::ReplicaId;
use meshid_ca::server::CaServer;
use meshid_ca::store::{AuditEvent, AuditFilter, AuditRecord, Store};
use meshid_identity::{TrustBundle, TrustDomain};
use meshid_proto::ca as pb;
use meshid_proto::ca::admin_client::AdminClient;
use meshid_tests::eventually_async;
use meshid_tests::postgres::Database;
use tonic::transport::Channel;

#[path = "support/server.rs"]
mod server;

use server::TD;

/// Long enough for a loaded machine; checkpoints come every second.
const WAIT: Duration = Duration::from_secs(30);

fn td() -> TrustDomain {
    TD.parse().unwrap()
}

/// A CA signing checkpoints every second.
fn config(dir: &Path) -> CaConfig {
    CaConfig {
        audit: AuditConfig {
            checkpoint_interval: Duration::from_secs(1),
            ..AuditConfig::default()
        },
        ..server::config(dir)
    }
}

async fn admin(ca: &CaServer) -> AdminClient<Channel> {
    AdminClient::new(
        meshid_runtime::uds::channel(ca.admin_socket.clone())
            .await
            .unwrap(),
    )
}

async fn all_records(store: &dyn Store) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    loop {
        let after = out.last().map_or(0, |r: &AuditRecord| r.seq);
        let page = store
            .list_audit(&AuditFilter::default(), after, 1000)
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Verifies the chain against the bundle the CA stored; panics on a problem.
async fn verified(store: &dyn Store) -> audit::VerifyReport {
    let bundle = audit::stored_bundle(store, &td()).await.unwrap();
    let report = audit::verify(store, &td(), &bundle).await.unwrap();
    assert!(report.ok(), "{report:?}");
    report
}

/// Waits until a checkpoint of at least `seq` is stored.
async fn checkpointed(store: &dyn Store, seq: i64) {
    eventually_async("the checkpointer signs the head", WAIT, || async {
        store
            .list_audit_checkpoints()
            .await
            .unwrap()
            .last()
            .is_some_and(|cp| cp.seq >= seq)
            .then_some(())
    })
    .await;
}

fn entry(path: &str) -> pb::Entry {
    pb::Entry {
        spiffe_id: format!("spiffe://{TD}/{path}"),
        parent_id: format!("spiffe://{TD}/meshid/agent/join_token/0123456789abcdef"),
        selectors: vec![pb::Selector {
            r#type: "unix".into(),
            value: "uid:1000".into(),
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_ca_continues_one_signed_chain() {
    let dir = tempfile::tempdir().unwrap();
    let ca = server::start(config(dir.path())).await;
    let bundle: TrustBundle = ca.authority.bundle().as_ref().clone();
    let mut client = admin(&ca).await;
    client
        .create_entries(pb::CreateEntriesRequest {
            entries: vec![entry("w/a"), entry("w/b")],
        })
        .await
        .unwrap();
    server::attest(&ca, &bundle).await;
    let head = ca.store.audit_head().await.unwrap().unwrap().0;
    checkpointed(ca.store.as_ref(), head).await;

    // The admin API lists and verifies what the CA wrote.
    let listed = client
        .list_audit(pb::ListAuditRequest::default())
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<&str> = listed.records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "entry.create").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"svid.issue"), "{actions:?}");
    let create = listed
        .records
        .iter()
        .find(|r| r.action == "entry.create")
        .unwrap();
    assert_eq!(create.actor, "uid:0");
    assert_eq!(create.result, "ok");
    assert!(
        create.after.contains("spiffe://example.org/w/"),
        "{create:?}"
    );
    assert_eq!(create.hash.len(), 64);
    let v = client
        .verify_audit(pb::VerifyAuditRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.last_seq, listed.records.last().unwrap().seq);
    assert!(v.checkpoints >= 1, "{v:?}");
    let before_restart = v.last_seq;
    drop(client);
    ca.shutdown().await.unwrap();

    // The same data: the chain goes on from the head.
    let ca = server::start(config(dir.path())).await;
    server::attest(&ca, &bundle).await;
    ca.store
        .append_audit(AuditEvent {
            actor: "config".into(),
            action: "tenant.create".into(),
            target: "t".into(),
            result: "ok".into(),
            ..AuditEvent::default()
        })
        .await
        .unwrap();
    let records = all_records(ca.store.as_ref()).await;
    let seqs: Vec<i64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(seqs.len() as i64 > before_restart + 1);
    let head = ca.store.audit_head().await.unwrap().unwrap().0;
    checkpointed(ca.store.as_ref(), head).await;
    let report = verified(ca.store.as_ref()).await;
    assert_eq!(report.last_seq, head);
    assert!(report.checkpoints >= 2, "{report:?}");

    // Paging and filters of ListAudit.
    let mut client = admin(&ca).await;
    let mut after_seq = 0;
    let mut paged = Vec::new();
    loop {
        let page = client
            .list_audit(pb::ListAuditRequest {
                after_seq,
                page_size: 2,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.records.len() <= 2);
        paged.extend(page.records.into_iter().map(|r| r.seq));
        if page.next_after_seq == 0 {
            break;
        }
        after_seq = page.next_after_seq;
    }
    assert_eq!(paged, seqs);
    let by_id = client
        .list_audit(pb::ListAuditRequest {
            spiffe_id: format!("spiffe://{TD}/w/a"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.records.len(), 1, "{by_id:?}");
    let since = client
        .list_audit(pb::ListAuditRequest {
            since_ms: records
                .last()
                .unwrap()
                .at
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(since.records.iter().any(|r| r.action == "tenant.create"));
    assert!(since.records.len() < records.len());
    let bad = client
        .list_audit(pb::ListAuditRequest {
            after_seq: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    drop(client);
    ca.shutdown().await.unwrap();
}

fn replica(dir: &Path, db: &Database, id: &str) -> CaConfig {
    CaConfig {
        store: Some(db.url.parse().unwrap()),
        ha: HaConfig {
            replica_id: Some(ReplicaId::parse(id).unwrap()),
            refresh_interval: Duration::from_millis(200),
            ..HaConfig::default()
        },
        ..config(dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_issuing_at_once_write_one_chain() {
    let Some(db) = Database::fresh("two_replicas_issuing_at_once_write_one_chain") else {
        return;
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = tokio::join!(
        server::start(replica(dir_a.path(), &db, "ca-a")),
        server::start(replica(dir_b.path(), &db, "ca-b")),
    );
    // Each replica verifies its node API under its own bundle.
    let (bundle_a, bundle_b) = (
        a.authority.bundle().as_ref().clone(),
        b.authority.bundle().as_ref().clone(),
    );
    const EACH: usize = 8;
    let mark = async |ca: &CaServer, who: &str| {
        for i in 0..EACH {
            ca.store
                .append_audit(AuditEvent {
                    actor: format!("ca:{who}"),
                    action: "key.prepare".into(),
                    target: format!("{who}-{i}"),
                    result: "ok".into(),
                    ..AuditEvent::default()
                })
                .await
                .unwrap();
        }
    };
    let attest_all = async |ca: &CaServer, bundle: &TrustBundle| {
        for _ in 0..EACH {
            server::attest(ca, bundle).await;
        }
    };
    tokio::join!(
        attest_all(&a, &bundle_a),
        attest_all(&b, &bundle_b),
        mark(&a, "ca-a"),
        mark(&b, "ca-b"),
    );

    let records = all_records(a.store.as_ref()).await;
    // Each record lists the certificates of one batch.
    let issued: usize = records
        .iter()
        .filter(|r| r.event.action == "svid.issue")
        .map(|r| {
            let after: serde_json::Value = serde_json::from_str(&r.event.after).unwrap();
            after["svids"].as_array().map_or(0, Vec::len)
        })
        .sum();
    assert!(issued >= 2 * EACH, "{issued} SVIDs in issuance records");
    let marks: HashSet<&str> = records
        .iter()
        .filter(|r| r.event.action == "key.prepare")
        .map(|r| r.event.target.as_str())
        .collect();
    assert_eq!(marks.len(), 2 * EACH);
    let head = a.store.audit_head().await.unwrap().unwrap().0;
    assert_eq!(head, records.len() as i64);
    // Both replicas checkpoint the one chain; both see it valid.
    checkpointed(b.store.as_ref(), head).await;
    // A checkpoint counts once the stored bundle holds its signer's root
    // (the replicas converge on one bundle within a few refreshes).
    eventually_async("a checkpoint verifies", WAIT, || async {
        (verified(a.store.as_ref()).await.checkpoints >= 1).then_some(())
    })
    .await;
    let report = verified(b.store.as_ref()).await;
    assert!(report.records >= head, "{report:?}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    drop(db);
}
