//! The audit log (#16): audited writes leave their change and their record
//! or neither, the chain links, concurrent appends form one gapless chain,
//! issuances are recorded in their batch, filters, paging, checkpoints.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use meshid_ca::store::{
    AuditCheckpoint, AuditEvent, AuditFilter, AuditRecord, Change, Changed, EntryUpdate, GENESIS,
    MAX_AUDIT_FIELD, Store, StoreError, record_hash,
};
use meshid_runtime::clock::{Clock, ManualClock};

use super::tenancy::{apply, by, create_tenant};
use super::{agent, bundle, entry, id, issuance, sha, token};

/// Every record, in seq order, read in pages of 7.
pub(super) async fn all_records(s: &Arc<dyn Store>, filter: &AuditFilter) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = Vec::new();
    loop {
        let after = out.last().map_or(0, |r| r.seq);
        let page = s.list_audit(filter, after, 7).await.unwrap();
        assert!(page.len() <= 7);
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Checks the whole chain: seq 1.., each prev_hash the previous hash, each
/// hash recomputed, the head at the last record. Returns the records.
pub(super) async fn valid_chain(s: &Arc<dyn Store>) -> Vec<AuditRecord> {
    let records = all_records(s, &AuditFilter::default()).await;
    let mut prev = GENESIS;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1, "no gap");
        assert_eq!(r.prev_hash, prev, "seq {} links to its predecessor", r.seq);
        let at_ms =
            r.at.duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
        assert_eq!(
            r.hash,
            record_hash(&prev, r.seq, at_ms, &r.event),
            "seq {}",
            r.seq
        );
        prev = r.hash;
    }
    let head = s.audit_head().await.unwrap();
    assert_eq!(head, records.last().map(|r| (r.seq, r.hash)));
    records
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

pub(super) async fn audited_writes_leave_change_and_record_or_neither(s: Arc<dyn Store>) {
    assert_eq!(s.audit_head().await.unwrap(), None);
    let created = apply(
        &s,
        Change::CreateEntry(entry("/web", "/node/a", &["unix:uid:1"])),
    )
    .await
    .unwrap();
    let Changed::Entry(e) = created else {
        panic!("{created:?}")
    };
    let recs = valid_chain(&s).await;
    assert_eq!(recs.len(), 1);
    let r = &recs[0].event;
    assert_eq!(
        (r.actor.as_str(), r.action.as_str()),
        ("uid:0", "entry.create")
    );
    assert_eq!(r.before, "");
    assert_eq!(json(&r.after)["id"], e.id.as_str());
    assert_eq!(json(&r.after)["spiffe_id"], "spiffe://example.org/web");

    // A revision conflict changes nothing and records nothing.
    let update = |rev| Change::UpdateEntry {
        id: e.id.clone(),
        update: EntryUpdate {
            admin: Some(true),
            ..EntryUpdate::default()
        },
        expected_revision: Some(rev),
    };
    let conflict = apply(&s, update(7)).await;
    assert!(
        matches!(conflict, Err(StoreError::Conflict { .. })),
        "{conflict:?}"
    );
    assert_eq!(s.get_entry(&e.id).await.unwrap().unwrap(), e);
    assert_eq!(s.audit_head().await.unwrap().unwrap().0, 1);

    // The caller's before/after are kept; empty ones are filled in.
    let change = update(1);
    let mut event = by("spiffe://example.org/admin", &change);
    event.after = "{\"note\":\"mine\"}".into();
    let Changed::Entry(u) = s.audited(change, event).await.unwrap() else {
        panic!()
    };
    assert!(u.admin);
    let r = valid_chain(&s).await.pop().unwrap().event;
    assert_eq!(json(&r.before)["admin"], false);
    assert_eq!(r.after, "{\"note\":\"mine\"}");

    // Unknown targets record nothing.
    for change in [
        Change::DeleteEntry("nope".into()),
        Change::BanAgent(id("/nope")),
        Change::DeleteAgent(id("/nope")),
        Change::PutBundle {
            bundle: bundle(3),
            expected_sequence: Some(2),
        },
    ] {
        let res = apply(&s, change).await;
        assert!(res.is_err(), "{res:?}");
    }
    assert_eq!(s.audit_head().await.unwrap().unwrap().0, 2);

    let t = token("t1", "secret", 9_999_999_999);
    assert_eq!(
        apply(&s, Change::CreateJoinToken(t.clone())).await.unwrap(),
        Changed::JoinToken
    );
    let r = valid_chain(&s).await.pop().unwrap().event;
    assert_eq!(json(&r.after)["id"], "t1");
    assert!(
        !r.after.contains(&hex::encode(sha("secret"))),
        "no hash: {}",
        r.after
    );
    assert!(json(&r.after).get("hash").is_none());

    let a = agent("/agent/1");
    s.upsert_agent(&a).await.unwrap();
    let banned = apply(&s, Change::BanAgent(a.spiffe_id.clone()))
        .await
        .unwrap();
    assert_eq!(
        banned,
        Changed::Agent(a.clone()),
        "the agent before the ban"
    );
    assert!(s.get_agent(&a.spiffe_id).await.unwrap().unwrap().banned);
    let r = valid_chain(&s).await.pop().unwrap().event;
    assert_eq!(
        (
            json(&r.before)["banned"].clone(),
            json(&r.after)["banned"].clone()
        ),
        (false.into(), true.into())
    );
    apply(&s, Change::DeleteAgent(a.spiffe_id.clone()))
        .await
        .unwrap();
    assert!(s.get_agent(&a.spiffe_id).await.unwrap().is_none());

    apply(
        &s,
        Change::PutBundle {
            bundle: bundle(1),
            expected_sequence: Some(0),
        },
    )
    .await
    .unwrap();
    let r = valid_chain(&s).await.pop().unwrap().event;
    assert_eq!((r.action.as_str(), r.before.as_str()), ("bundle.set", ""));
    assert_eq!(json(&r.after)["bundle"]["spiffe_sequence"], 1);

    let Changed::Entry(d) = apply(&s, Change::DeleteEntry(e.id.clone())).await.unwrap() else {
        panic!()
    };
    assert_eq!(d.id, e.id);
    let recs = valid_chain(&s).await;
    let actions: Vec<&str> = recs.iter().map(|r| r.event.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "entry.create",
            "entry.update",
            "token.create",
            "agent.ban",
            "agent.evict",
            "bundle.set",
            "entry.delete"
        ]
    );

    // A bad event is refused before anything is written.
    let bad = AuditEvent {
        actor: String::new(),
        ..by("x", &Change::DeleteEntry(String::new()))
    };
    let res = s
        .audited(
            Change::CreateEntry(entry("/b", "/node/a", &["unix:uid:3"])),
            bad,
        )
        .await;
    assert!(matches!(res, Err(StoreError::Invalid(_))), "{res:?}");
    assert_eq!(s.count_entries().await.unwrap(), 0);
}

pub(super) async fn records_on_their_own_chain_and_are_bounded(s: Arc<dyn Store>) {
    let mut first = None;
    for i in 0..5 {
        let r = s
            .append_audit(AuditEvent {
                actor: "config".into(),
                action: "tenant.create".into(),
                tenant: "pay".into(),
                target: format!("t{i}"),
                result: "denied: uid:7 lacks role admin".into(),
                ..AuditEvent::default()
            })
            .await
            .unwrap();
        assert_eq!(r.seq, i + 1);
        first.get_or_insert(r);
    }
    let huge = "x".repeat(MAX_AUDIT_FIELD + 10);
    let r = s
        .append_audit(AuditEvent {
            actor: "a".repeat(3000),
            action: "bundle.set".into(),
            before: format!("\"{huge}\""),
            result: "é".repeat(1500),
            ..AuditEvent::default()
        })
        .await
        .unwrap();
    assert!(r.event.before.len() <= MAX_AUDIT_FIELD);
    let kept: String = serde_json::from_str(&r.event.before).unwrap();
    assert!(
        kept.ends_with("…(truncated)"),
        "{}",
        &kept[kept.len() - 40..]
    );
    assert_eq!(r.event.actor.len(), 2048);
    assert!(r.event.result.len() <= 2048);
    let recs = valid_chain(&s).await;
    assert_eq!(recs.len(), 6);
    assert_eq!(recs[0], first.unwrap());
    assert_eq!(recs[5], r);

    for bad in [
        AuditEvent {
            actor: "x".into(),
            ..AuditEvent::default()
        },
        AuditEvent {
            action: "x".into(),
            ..AuditEvent::default()
        },
        AuditEvent {
            actor: "x".into(),
            action: "y".repeat(65),
            ..AuditEvent::default()
        },
    ] {
        assert!(matches!(
            s.append_audit(bad).await,
            Err(StoreError::Invalid(_))
        ));
    }
    assert_eq!(s.audit_head().await.unwrap().unwrap().0, 6);
}

pub(super) async fn concurrent_appends_form_one_gapless_chain(s: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for task in 0..8u64 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            for i in 0..12u64 {
                match i % 3 {
                    0 => {
                        let rec = issuance(format!("{task:02x}{i:030x}"), i);
                        s.record_issuances(&[rec]).await.unwrap();
                    }
                    1 => {
                        let path = format!("/w/{task}/{i}");
                        apply(
                            &s,
                            Change::CreateEntry(entry(&path, "/node/a", &["unix:uid:1"])),
                        )
                        .await
                        .unwrap();
                    }
                    _ => {
                        s.append_audit(AuditEvent {
                            actor: format!("uid:{task}"),
                            action: "key.prepare".into(),
                            ..AuditEvent::default()
                        })
                        .await
                        .unwrap();
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let recs = valid_chain(&s).await;
    assert_eq!(recs.len(), 8 * 12);
}

pub(super) async fn issuances_are_recorded_in_their_batch(s: Arc<dyn Store>) {
    create_tenant(&s, "pay").await;
    let mut batch: Vec<_> = (0..1500)
        .map(|i| issuance(format!("{i:032x}"), i))
        .collect();
    batch[7].tenant = "pay".into();
    s.record_issuances(&batch).await.unwrap();
    let recs = valid_chain(&s).await;
    let issued: Vec<_> = recs
        .iter()
        .filter(|r| r.event.action == "svid.issue")
        .collect();
    // One record per agent and tenant of the batch, at most 128
    // certificates each: 750 with agent /node/a, 749 without, 1 of "pay".
    assert_eq!(
        issued.len(),
        6 + 6 + 1,
        "{:?}",
        issued.iter().map(|r| &r.event.target).collect::<Vec<_>>()
    );
    let mut listed = Vec::new();
    for r in &issued {
        let after = json(&r.event.after);
        let svids = after["svids"].as_array().expect("svids").clone();
        assert!((1..=128).contains(&svids.len()), "{}", svids.len());
        if svids.len() > 1 {
            assert_eq!(r.event.target, format!("{} SVIDs", svids.len()));
        }
        for v in &svids {
            assert_eq!(v["agent"].as_str().unwrap_or("ca:"), r.event.actor);
        }
        listed.extend(svids.into_iter().map(|v| (r.event.tenant.clone(), v)));
    }
    assert_eq!(listed.len(), 1500, "every certificate listed once");
    let serials: HashSet<String> = listed
        .iter()
        .map(|(_, v)| v["serial"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(serials.len(), 1500);
    let pay = issued.iter().find(|r| r.event.tenant == "pay").unwrap();
    assert_eq!(
        (pay.event.target.as_str(), pay.event.actor.as_str()),
        (batch[7].spiffe_id.as_str(), "ca:"),
        "a lone certificate is the record's target; no agent"
    );
    let b = &batch[6];
    let (tenant, after) = listed
        .iter()
        .find(|(_, v)| v["serial"] == b.serial.as_str())
        .unwrap();
    assert_eq!(tenant, "");
    assert_eq!(after["spiffe_id"], b.spiffe_id.as_str());
    assert_eq!(after["entry"], b.entry_id.as_deref().unwrap());
    assert_eq!(after["agent"], b.agent_id.as_ref().unwrap().as_str());
    assert_eq!(after["key_id"], serde_json::Value::Null);
    let not_after = b
        .not_after
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(after["not_after_ms"], not_after);
    // Found by the SPIFFE ID of any certificate it lists.
    let found = s
        .list_audit(
            &AuditFilter {
                spiffe_id: Some(b.spiffe_id.as_str().to_owned()),
                ..AuditFilter::default()
            },
            0,
            100,
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");

    // A failed batch records nothing.
    let head = s.audit_head().await.unwrap();
    let dup = vec![
        issuance("ab".into(), 1),
        issuance(batch[0].serial.clone(), 2),
    ];
    assert!(s.record_issuances(&dup).await.is_err());
    assert_eq!(s.audit_head().await.unwrap(), head);
}

/// With `audit_issuances` off, issuances are stored and not recorded.
pub(super) async fn issuances_are_not_recorded_when_turned_off(s: Arc<dyn Store>) {
    let batch: Vec<_> = (0..10).map(|i| issuance(format!("{i:032x}"), i)).collect();
    s.record_issuances(&batch).await.unwrap();
    assert_eq!(s.count_issuances().await.unwrap(), 10);
    assert_eq!(s.audit_head().await.unwrap(), None);
}

pub(super) async fn audit_records_are_filtered_and_paged(s: Arc<dyn Store>, clock: ManualClock) {
    let event = |tenant: &str, target: &str| AuditEvent {
        actor: "uid:0".into(),
        action: "entry.delete".into(),
        tenant: tenant.into(),
        target: target.into(),
        ..AuditEvent::default()
    };
    let web = "spiffe://example.org/web";
    s.append_audit(event("pay", "e1")).await.unwrap();
    s.append_audit(event("", web)).await.unwrap();
    clock.advance(Duration::from_secs(60));
    let since = clock.now();
    s.append_audit(event("ads", "e2")).await.unwrap();
    s.append_audit(AuditEvent {
        after: format!("{{\"spiffe_id\":\"{web}\"}}"),
        ..event("pay", "e3")
    })
    .await
    .unwrap();
    s.append_audit(AuditEvent {
        before: format!("{{\"spiffe_id\":\"{web}/api\"}}"),
        ..event("pay", "e4")
    })
    .await
    .unwrap();
    let seqs = |recs: Vec<AuditRecord>| recs.iter().map(|r| r.seq).collect::<Vec<_>>();
    let of = |tenants: &[&str]| AuditFilter {
        tenants: Some(tenants.iter().map(|t| (*t).to_owned()).collect()),
        ..AuditFilter::default()
    };
    assert_eq!(seqs(all_records(&s, &of(&["pay"])).await), [1, 4, 5]);
    assert_eq!(seqs(all_records(&s, &of(&["", "ads"])).await), [2, 3]);
    assert!(all_records(&s, &of(&[])).await.is_empty());
    let recent = AuditFilter {
        since: Some(since),
        ..AuditFilter::default()
    };
    assert_eq!(seqs(all_records(&s, &recent).await), [3, 4, 5]);
    let about = AuditFilter {
        spiffe_id: Some(web.into()),
        ..AuditFilter::default()
    };
    assert_eq!(seqs(all_records(&s, &about).await), [2, 4], "not /web/api");
    let both = AuditFilter {
        since: Some(since),
        ..about.clone()
    };
    assert_eq!(seqs(all_records(&s, &both).await), [4]);

    assert_eq!(
        seqs(s.list_audit(&AuditFilter::default(), 2, 2).await.unwrap()),
        [3, 4]
    );
    assert_eq!(
        seqs(s.list_audit(&AuditFilter::default(), 0, 0).await.unwrap()),
        [1],
        "limit ≥ 1"
    );
    assert!(
        s.list_audit(&AuditFilter::default(), 5, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let wide = AuditFilter {
        tenants: Some(vec![String::new(); 1001]),
        ..AuditFilter::default()
    };
    assert!(matches!(
        s.list_audit(&wide, 0, 10).await,
        Err(StoreError::Invalid(_))
    ));
}

pub(super) async fn checkpoints_are_stored_once_per_seq(s: Arc<dyn Store>, clock: ManualClock) {
    assert!(s.list_audit_checkpoints().await.unwrap().is_empty());
    let cp = |seq: i64| AuditCheckpoint {
        seq,
        hash: [seq as u8; 32],
        at: clock.now()
            - Duration::from_nanos(
                clock
                    .now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos()
                    .into(),
            ),
        key_id: "ab12".into(),
        cert_chain_pem: "-----BEGIN CERTIFICATE-----\n...".into(),
        signature: vec![seq as u8; 64],
    };
    for seq in [5, 2, 9] {
        s.put_audit_checkpoint(&cp(seq)).await.unwrap();
    }
    let listed = s.list_audit_checkpoints().await.unwrap();
    assert_eq!(listed, vec![cp(2), cp(5), cp(9)]);
    let dup = s
        .put_audit_checkpoint(&AuditCheckpoint {
            signature: vec![1],
            ..cp(5)
        })
        .await;
    assert!(
        matches!(dup, Err(StoreError::AlreadyExists { .. })),
        "{dup:?}"
    );
    for bad in [
        AuditCheckpoint { seq: 0, ..cp(1) },
        AuditCheckpoint {
            key_id: String::new(),
            ..cp(1)
        },
        AuditCheckpoint {
            signature: Vec::new(),
            ..cp(1)
        },
        AuditCheckpoint {
            cert_chain_pem: String::new(),
            ..cp(1)
        },
    ] {
        let res = s.put_audit_checkpoint(&bad).await;
        assert!(matches!(res, Err(StoreError::Invalid(_))), "{res:?}");
    }
    let seqs: HashSet<i64> = s
        .list_audit_checkpoints()
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, HashSet::from([2, 5, 9]));
}
