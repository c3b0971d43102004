//! Entry owners over the admin API (#13): what the Kubernetes controller
//! relies on to find, change and delete only its own entries.

use super::*;

/// The owner of the controller of cluster `demo`.
const DEMO: &str = "k8s/demo";

fn owned(path: &str, uid: u32, owner: &str) -> pb::Entry {
    pb::Entry {
        owner: owner.into(),
        ..entry(path, uid)
    }
}

/// The SPIFFE IDs `req` lists (sorted), walking every page; each listed
/// entry has the owner asked for.
async fn list_all(h: &mut Harness, req: pb::ListEntriesRequest) -> Vec<String> {
    let mut ids = Vec::new();
    let mut token = String::new();
    for _ in 0..100 {
        let resp = h
            .client
            .list_entries(pb::ListEntriesRequest {
                page_token: token,
                ..req.clone()
            })
            .await
            .unwrap()
            .into_inner();
        for e in resp.entries {
            assert!(req.by_owner.is_empty() || e.owner == req.by_owner, "{e:?}");
            ids.push(e.spiffe_id);
        }
        if resp.next_page_token.is_empty() {
            ids.sort();
            return ids;
        }
        token = resp.next_page_token;
    }
    panic!("more than 100 pages");
}

fn by_owner(owner: &str) -> pb::ListEntriesRequest {
    pb::ListEntriesRequest {
        page_size: 2,
        by_owner: owner.into(),
        ..Default::default()
    }
}

fn sid(path: &str) -> String {
    format!("spiffe://example.org/{path}")
}

#[tokio::test]
async fn owners_are_stored_listed_by_and_replaced_by_update() {
    let mut h = start().await;
    let mut batch: Vec<pb::Entry> = (0..5)
        .map(|i| owned(&format!("pod{i}"), 2000 + i, DEMO))
        .collect();
    batch[4].parent_id = "spiffe://example.org/k8s-node/b".into();
    batch.push(entry("op", 1000));
    batch.push(owned("other", 1001, "k8s/other"));
    batch.push(owned("bad", 1002, "k8s/Demo"));
    // The same SPIFFE ID, parent and selectors as pod0 under another
    // owner: still a duplicate (the owner is not part of the identity).
    batch.push(owned("pod0", 2000, "k8s/other"));
    let results = create(&mut h, batch).await;
    let pod0 = created(&results[0]).clone();
    assert_eq!(pod0.owner, DEMO);
    assert_eq!(created(&results[5]).owner, "");
    let bad = item_error(&results[7]);
    assert_eq!(bad.code, Code::InvalidArgument as i32, "{bad:?}");
    assert!(bad.message.starts_with("owner \"k8s/Demo\""), "{bad:?}");
    assert_eq!(item_error(&results[8]).code, Code::AlreadyExists as i32);
    assert_eq!(h.store.count_entries().await.unwrap(), 7);

    let got = h
        .client
        .get_entry(pb::GetEntryRequest {
            id: pod0.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, pod0, "GetEntry returns the owner");

    let pods: Vec<String> = (0..5).map(|i| sid(&format!("pod{i}"))).collect();
    assert_eq!(list_all(&mut h, by_owner(DEMO)).await, pods);
    assert!(list_all(&mut h, by_owner("k8s")).await.is_empty());
    // Empty: no owner filter.
    assert_eq!(list_all(&mut h, by_owner("")).await.len(), 7);
    // Composes with the other filters.
    let on_b = pb::ListEntriesRequest {
        by_parent_id: "spiffe://example.org/k8s-node/b".into(),
        ..by_owner(DEMO)
    };
    assert_eq!(list_all(&mut h, on_b).await, vec![sid("pod4")]);
    let with_selector = pb::ListEntriesRequest {
        by_selector: Some(pb::Selector {
            r#type: "unix".into(),
            value: "uid:1001".into(),
        }),
        ..by_owner(DEMO)
    };
    assert!(list_all(&mut h, with_selector).await.is_empty());
    let by_id = pb::ListEntriesRequest {
        by_spiffe_id: sid("other"),
        ..by_owner("k8s/other")
    };
    assert_eq!(list_all(&mut h, by_id).await, vec![sid("other")]);

    let refused = h
        .client
        .list_entries(by_owner("k8s demo"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("by_owner"), "{refused:?}");

    // UpdateEntry replaces every field, the owner included.
    let mut released = pod0.clone();
    released.owner = String::new();
    let updated = h
        .client
        .update_entry(pb::UpdateEntryRequest {
            entry: Some(released),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((updated.owner.as_str(), updated.revision), ("", 2));
    assert_eq!(list_all(&mut h, by_owner(DEMO)).await.len(), 4);
    let mut bad = updated.clone();
    bad.owner = "x".repeat(129);
    let err = h
        .client
        .update_entry(pb::UpdateEntryRequest { entry: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let stored = h.store.get_entry(&pod0.id).await.unwrap().unwrap();
    assert_eq!((stored.owner.as_str(), stored.revision), ("", 2));
}

#[tokio::test]
async fn create_entries_takes_at_most_1000_entries_per_call() {
    let mut h = start().await;
    let batch =
        |n: u32| -> Vec<pb::Entry> { (0..n).map(|i| owned(&format!("p{i}"), i, DEMO)).collect() };
    let err = h
        .client
        .create_entries(pb::CreateEntriesRequest {
            entries: batch(1001),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("the limit is 1000"), "{err:?}");
    assert_eq!(h.store.count_entries().await.unwrap(), 0);
    let results = create(&mut h, batch(1000)).await;
    assert!(results.iter().all(|r| created(r).owner == DEMO));
    assert_eq!(h.store.count_entries().await.unwrap(), 1000);
}
