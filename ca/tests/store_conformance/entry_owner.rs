//! Entry owners (#13): stored, returned, changed, checked, and filtered on
//! together with the other filters and paging.

use std::collections::HashSet;
use std::sync::Arc;

use meshid_ca::store::{EntryFilter, EntryUpdate, MAX_OWNER_LEN, Page, Store, StoreError};

use super::{entry, id, sel};

/// The owner the Kubernetes controller of cluster `demo` writes.
const DEMO: &str = "k8s/demo";

/// Every entry ID `filter` lists, walking pages of `limit`.
async fn listed(s: &Arc<dyn Store>, filter: &EntryFilter, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page = Page::first(limit);
    for _ in 0..100 {
        let (items, next) = s.list_entries(filter, &page).await.unwrap();
        assert!(items.len() <= limit as usize);
        ids.extend(items.into_iter().map(|e| e.id));
        match next {
            Some(cursor) => page = Page::after(cursor, limit),
            None => return ids,
        }
    }
    panic!("more than 100 pages for {filter:?}");
}

fn owned_by(owner: &str) -> EntryFilter {
    EntryFilter {
        owner: Some(owner.into()),
        ..EntryFilter::default()
    }
}

pub(super) async fn owners_are_stored_changed_and_filtered_on(s: Arc<dyn Store>) {
    let operator = s
        .create_entry(entry("/op", "/node/a", &["k8s:ns:pay"]))
        .await
        .unwrap();
    assert_eq!(operator.owner, "", "an operator's entry by default");
    let mut mine = Vec::new();
    for i in 0..7 {
        let mut e = entry(&format!("/pod/{i}"), "/node/a", &["k8s:ns:pay"]);
        if i % 2 == 1 {
            e.parent_id = id("/node/b");
        }
        e.owner = DEMO.into();
        mine.push(s.create_entry(e).await.unwrap());
    }
    let mut other = entry("/pod/x", "/node/a", &["k8s:ns:pay"]);
    other.owner = "k8s/other".into();
    let other = s.create_entry(other).await.unwrap();

    let got = s.get_entry(&mine[0].id).await.unwrap().unwrap();
    assert_eq!(got.owner, DEMO);
    assert_eq!(got, mine[0], "the owner round-trips");
    let ids: Vec<String> = mine.iter().map(|e| e.id.clone()).collect();
    let many = s.get_entries(&ids).await.unwrap();
    assert!(many.iter().all(|e| e.owner == DEMO), "get_entries too");

    // Exact match, every page visited once, in ID order.
    let mut want: Vec<String> = ids.clone();
    want.sort();
    assert_eq!(listed(&s, &owned_by(DEMO), 2).await, want);
    assert_eq!(
        listed(&s, &owned_by(""), 2).await,
        vec![operator.id.clone()]
    );
    assert_eq!(listed(&s, &owned_by("k8s"), 2).await, Vec::<String>::new());
    assert_eq!(listed(&s, &EntryFilter::default(), 3).await.len(), 9);
    // Composes with the other filters.
    let on_b = EntryFilter {
        parent_id: Some(id("/node/b")),
        selector: Some(sel("k8s:ns:pay")),
        ..owned_by(DEMO)
    };
    let want_b: HashSet<String> = mine
        .iter()
        .filter(|e| e.parent_id == id("/node/b"))
        .map(|e| e.id.clone())
        .collect();
    let got_b: HashSet<String> = listed(&s, &on_b, 1).await.into_iter().collect();
    assert_eq!(got_b, want_b);
    assert_eq!(want_b.len(), 3);
    let by_id = EntryFilter {
        spiffe_id: Some(id("/pod/x")),
        ..owned_by(DEMO)
    };
    assert!(listed(&s, &by_id, 10).await.is_empty());

    // An update leaves the owner alone unless it names one.
    let moved = s
        .update_entry(
            &other.id,
            EntryUpdate {
                dns_names: Some(vec!["x.local".into()]),
                ..EntryUpdate::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(moved.owner, "k8s/other");
    let adopted = s
        .update_entry(
            &other.id,
            EntryUpdate {
                owner: Some(DEMO.into()),
                ..EntryUpdate::default()
            },
            Some(moved.revision),
        )
        .await
        .unwrap();
    assert_eq!(adopted.owner, DEMO);
    assert_eq!(listed(&s, &owned_by(DEMO), 100).await.len(), 8);
    let released = EntryUpdate {
        owner: Some(String::new()),
        ..EntryUpdate::default()
    };
    s.update_entry(&other.id, released, None).await.unwrap();
    assert_eq!(listed(&s, &owned_by(""), 100).await.len(), 2);
}

pub(super) async fn bad_owners_are_refused_and_do_not_make_entries_distinct(s: Arc<dyn Store>) {
    for bad in [
        "K8s/demo",
        "k8s demo",
        "k8s:demo",
        &"a".repeat(MAX_OWNER_LEN + 1),
    ] {
        let mut e = entry("/w", "/node/a", &["unix:uid:1"]);
        e.owner = bad.to_owned();
        let res = s.create_entry(e).await;
        assert!(
            matches!(res, Err(StoreError::Invalid(_))),
            "{bad:?}: {res:?}"
        );
    }
    assert_eq!(s.count_entries().await.unwrap(), 0, "nothing stored");
    let mut e = entry("/w", "/node/a", &["unix:uid:1"]);
    e.owner = "a".repeat(MAX_OWNER_LEN);
    let stored = s.create_entry(e).await.unwrap();
    let bad = EntryUpdate {
        owner: Some("k8s/Demo".into()),
        ..EntryUpdate::default()
    };
    let res = s.update_entry(&stored.id, bad, None).await;
    assert!(matches!(res, Err(StoreError::Invalid(_))), "{res:?}");
    assert_eq!(s.get_entry(&stored.id).await.unwrap().unwrap(), stored);
    // The owner is not part of an entry's identity: the same SPIFFE ID,
    // parent and selectors under another owner is still a duplicate.
    let mut twin = entry("/w", "/node/a", &["unix:uid:1"]);
    twin.owner = DEMO.into();
    let res = s.create_entry(twin).await;
    assert!(
        matches!(res, Err(StoreError::AlreadyExists { .. })),
        "{res:?}"
    );
}
