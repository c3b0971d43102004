//! Tenants and role bindings (#16): created and deleted through
//! `Store::audited`, bounded, and a tenant cannot be deleted while
//! anything belongs to it.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use meshid_ca::store::{
    AuditEvent, Change, Changed, EntryFilter, JoinToken, MAX_TENANT_PREFIXES, MAX_TENANTS, Page,
    Role, RoleBinding, Store, StoreError, Tenant,
};
use meshid_identity::TrustDomain;
use meshid_runtime::clock::{Clock, ManualClock};

use super::{agent, entry, sha};

/// A tenant owning `spiffe://example.org/ns/<name>`.
pub(super) fn tenant(name: &str) -> Tenant {
    Tenant {
        name: name.into(),
        spiffe_id_prefixes: vec![format!("spiffe://example.org/ns/{name}")],
        k8s_namespaces: vec![name.into()],
        allowed_parents: vec!["spiffe://example.org/node/shared".into()],
        federates_with: vec![TrustDomain::new("partner.example").unwrap()],
        created_at: UNIX_EPOCH,
    }
}

/// An audit event of `actor` for `change`.
pub(super) fn by(actor: &str, change: &Change) -> AuditEvent {
    AuditEvent {
        actor: actor.into(),
        action: change.action().into(),
        result: "ok".into(),
        ..AuditEvent::default()
    }
}

/// Applies `change` as `uid:0`.
pub(super) async fn apply(s: &Arc<dyn Store>, change: Change) -> Result<Changed, StoreError> {
    let event = by("uid:0", &change);
    s.audited(change, event).await
}

pub(super) async fn create_tenant(s: &Arc<dyn Store>, name: &str) -> Tenant {
    match apply(s, Change::CreateTenant(tenant(name))).await.unwrap() {
        Changed::Tenant(t) => t,
        other => panic!("{other:?}"),
    }
}

fn binding(subject: &str, role: Role, tenant: &str) -> RoleBinding {
    RoleBinding {
        subject: subject.into(),
        role,
        tenant: tenant.into(),
        created_at: UNIX_EPOCH,
    }
}

pub(super) async fn tenants_are_created_listed_bounded_and_deleted(
    s: Arc<dyn Store>,
    clock: ManualClock,
) {
    let pay = create_tenant(&s, "payments").await;
    assert_eq!(pay.created_at, clock.now_ms_rounded());
    assert_eq!(
        Tenant {
            created_at: UNIX_EPOCH,
            ..pay.clone()
        },
        tenant("payments")
    );
    assert_eq!(s.get_tenant("payments").await.unwrap(), Some(pay.clone()));
    assert_eq!(s.get_tenant("nope").await.unwrap(), None);
    let ads = create_tenant(&s, "ads").await;
    assert_eq!(s.list_tenants().await.unwrap(), vec![ads, pay.clone()]);

    let again = apply(&s, Change::CreateTenant(tenant("payments"))).await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "{again:?}"
    );
    let many = |n: usize| {
        (0..n)
            .map(|i| format!("spiffe://example.org/p/{i}"))
            .collect()
    };
    let bad = [
        tenant("Payments"),
        tenant(""),
        tenant(&"a".repeat(64)),
        Tenant {
            spiffe_id_prefixes: many(MAX_TENANT_PREFIXES + 1),
            ..tenant("wide")
        },
        Tenant {
            k8s_namespaces: vec!["x".repeat(2049)],
            ..tenant("long")
        },
        Tenant {
            allowed_parents: vec![String::new()],
            ..tenant("empty")
        },
    ];
    for t in bad {
        let res = apply(&s, Change::CreateTenant(t.clone())).await;
        assert!(matches!(res, Err(StoreError::Invalid(_))), "{t:?}: {res:?}");
    }
    let ok = Tenant {
        spiffe_id_prefixes: many(MAX_TENANT_PREFIXES),
        ..tenant("wide")
    };
    apply(&s, Change::CreateTenant(ok)).await.unwrap();

    let gone = apply(&s, Change::DeleteTenant("payments".into())).await;
    assert_eq!(gone.unwrap(), Changed::Tenant(pay));
    assert_eq!(s.get_tenant("payments").await.unwrap(), None);
    let unknown = apply(&s, Change::DeleteTenant("payments".into())).await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound { .. })),
        "{unknown:?}"
    );

    // The store refuses tenant number MAX_TENANTS + 1.
    let have = s.list_tenants().await.unwrap().len();
    for i in have..MAX_TENANTS {
        apply(&s, Change::CreateTenant(tenant(&format!("t{i}"))))
            .await
            .unwrap();
    }
    assert_eq!(s.list_tenants().await.unwrap().len(), MAX_TENANTS);
    let full = apply(&s, Change::CreateTenant(tenant("one-more"))).await;
    assert!(matches!(full, Err(StoreError::Invalid(_))), "{full:?}");
}

pub(super) async fn a_tenant_in_use_is_not_deleted(s: Arc<dyn Store>, clock: ManualClock) {
    create_tenant(&s, "pay").await;
    let delete = || apply(&s, Change::DeleteTenant("pay".into()));
    let refused = |res: Result<Changed, StoreError>, what: &str| match res {
        Err(StoreError::Conflict { detail, .. }) => assert!(detail.contains(what), "{detail}"),
        other => panic!("{what}: {other:?}"),
    };

    let e = s
        .create_entry(NewEntryExt::in_tenant(
            entry("/ns/pay/web", "/node/a", &["unix:uid:1"]),
            "pay",
        ))
        .await
        .unwrap();
    assert_eq!(e.tenant, "pay");
    assert_eq!(s.get_entry(&e.id).await.unwrap().unwrap().tenant, "pay");
    let only = |t: &[&str]| EntryFilter {
        tenants: Some(t.iter().map(|t| (*t).to_owned()).collect()),
        ..EntryFilter::default()
    };
    let listed = |f: EntryFilter| {
        let s = Arc::clone(&s);
        async move { s.list_entries(&f, &Page::first(10)).await.unwrap().0.len() }
    };
    s.create_entry(entry("/platform", "/node/a", &["unix:uid:2"]))
        .await
        .unwrap();
    assert_eq!(listed(only(&["pay"])).await, 1);
    assert_eq!(listed(only(&[""])).await, 1);
    assert_eq!(listed(only(&["pay", ""])).await, 2);
    assert_eq!(listed(only(&[])).await, 0);
    assert_eq!(listed(EntryFilter::default()).await, 2);
    let too_many = EntryFilter {
        tenants: Some(vec![String::new(); 1001]),
        ..EntryFilter::default()
    };
    assert!(matches!(
        s.list_entries(&too_many, &Page::first(10)).await,
        Err(StoreError::Invalid(_))
    ));

    refused(delete().await, "1 entries");
    s.delete_entry(&e.id).await.unwrap();

    let mut a = agent("/meshid/agent/join_token/x");
    a.tenant = "pay".into();
    s.upsert_agent(&a).await.unwrap();
    assert_eq!(
        s.get_agent(&a.spiffe_id).await.unwrap().unwrap().tenant,
        "pay"
    );
    refused(delete().await, "1 agents");
    s.delete_agent(&a.spiffe_id).await.unwrap();

    let expires = clock.now() + Duration::from_secs(60);
    let token = JoinToken {
        id: "t1".into(),
        hash: sha("t1-secret"),
        spiffe_id: None,
        expires_at: expires,
        used_at: None,
        tenant: "pay".into(),
    };
    s.create_join_token(&token).await.unwrap();
    refused(delete().await, "1 unused join tokens");
    clock.advance(Duration::from_secs(61));

    // Bindings of the tenant go with it.
    apply(&s, Change::Bind(binding("uid:7", Role::Viewer, "pay")))
        .await
        .unwrap();
    delete().await.unwrap();
    assert!(s.list_bindings().await.unwrap().is_empty());

    // Nothing can be added to a tenant that does not exist.
    let orphan = s
        .create_entry(NewEntryExt::in_tenant(
            entry("/ns/pay/web", "/node/a", &["unix:uid:1"]),
            "pay",
        ))
        .await;
    assert!(
        matches!(orphan, Err(StoreError::NotFound { kind: "tenant", .. })),
        "{orphan:?}"
    );
    let orphan = s
        .create_join_token(&JoinToken {
            id: "t2".into(),
            hash: sha("t2"),
            ..token
        })
        .await;
    assert!(
        matches!(orphan, Err(StoreError::NotFound { .. })),
        "{orphan:?}"
    );
    assert!(matches!(
        s.upsert_agent(&a).await,
        Err(StoreError::NotFound { .. })
    ));
    let bad = s
        .create_entry(NewEntryExt::in_tenant(
            entry("/x", "/node/a", &["unix:uid:1"]),
            "Bad Name",
        ))
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
    let platform_delete = apply(&s, Change::DeleteTenant(String::new())).await;
    assert!(matches!(platform_delete, Err(StoreError::Invalid(_))));
}

/// Setting the tenant of a test entry.
trait NewEntryExt {
    fn in_tenant(self, tenant: &str) -> Self;
}

impl NewEntryExt for meshid_ca::store::NewEntry {
    fn in_tenant(mut self, tenant: &str) -> Self {
        self.tenant = tenant.into();
        self
    }
}

pub(super) async fn bindings_are_bound_listed_and_unbound(s: Arc<dyn Store>, clock: ManualClock) {
    create_tenant(&s, "pay").await;
    create_tenant(&s, "ads").await;
    let bound = |b: RoleBinding| apply(&s, Change::Bind(b));
    let ok = [
        binding("uid:1001", Role::Operator, "pay"),
        binding("uid:1001", Role::Viewer, "pay"),
        binding("spiffe://example.org/ops", Role::Admin, "ads"),
        binding("k8s-user:alice", Role::ClusterAdmin, ""),
        binding("gid:50", Role::Viewer, "ads"),
    ];
    for b in &ok {
        match bound(b.clone()).await.unwrap() {
            Changed::Binding(stored) => {
                assert_eq!(stored.created_at, clock.now_ms_rounded());
                assert_eq!((&stored.subject, stored.role), (&b.subject, b.role));
            }
            other => panic!("{other:?}"),
        }
    }
    let dup = bound(ok[0].clone()).await;
    assert!(
        matches!(dup, Err(StoreError::AlreadyExists { .. })),
        "{dup:?}"
    );
    for (b, want_not_found) in [
        (binding("uid:1", Role::ClusterAdmin, "pay"), false),
        (binding("uid:1", Role::Admin, ""), false),
        (binding("", Role::Viewer, "pay"), false),
        (binding(&"u".repeat(2049), Role::Viewer, "pay"), false),
        (binding("uid:1", Role::Viewer, "Pay"), false),
        (binding("uid:1", Role::Viewer, "nope"), true),
    ] {
        let res = bound(b.clone()).await;
        match res {
            Err(StoreError::NotFound { .. }) if want_not_found => {}
            Err(StoreError::Invalid(_)) if !want_not_found => {}
            other => panic!("{b:?}: {other:?}"),
        }
    }
    let order: Vec<(String, String, Role)> = s
        .list_bindings()
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.tenant, b.subject, b.role))
        .collect();
    let want = vec![
        (
            String::new(),
            "k8s-user:alice".to_owned(),
            Role::ClusterAdmin,
        ),
        ("ads".into(), "gid:50".into(), Role::Viewer),
        ("ads".into(), "spiffe://example.org/ops".into(), Role::Admin),
        ("pay".into(), "uid:1001".into(), Role::Operator),
        ("pay".into(), "uid:1001".into(), Role::Viewer),
    ];
    assert_eq!(order, want);

    let gone = apply(&s, Change::Unbind(ok[1].clone())).await.unwrap();
    assert!(matches!(gone, Changed::Binding(b) if b.role == Role::Viewer && b.tenant == "pay"));
    let again = apply(&s, Change::Unbind(ok[1].clone())).await;
    assert!(
        matches!(again, Err(StoreError::NotFound { .. })),
        "{again:?}"
    );
    assert_eq!(s.list_bindings().await.unwrap().len(), 4);
}

/// The clock's time at millisecond precision (what the store keeps).
trait MsClock {
    fn now_ms_rounded(&self) -> std::time::SystemTime;
}

impl MsClock for ManualClock {
    fn now_ms_rounded(&self) -> std::time::SystemTime {
        let ms = self.now().duration_since(UNIX_EPOCH).unwrap().as_millis();
        UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap())
    }
}

/// Entries added while their tenant is deleted: afterwards either the
/// tenant exists or nothing of it does (no orphan slips between the
/// in-use count and the delete).
pub(super) async fn deleting_a_tenant_races_no_orphan_in(s: Arc<dyn Store>) {
    for round in 0..5 {
        let name = format!("race{round}");
        create_tenant(&s, &name).await;
        let mut tasks = Vec::new();
        for i in 0..4 {
            let s = Arc::clone(&s);
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                let path = format!("/ns/{name}/w{i}");
                let e = NewEntryExt::in_tenant(entry(&path, "/node/a", &["unix:uid:1"]), &name);
                let _ = s.create_entry(e).await;
            }));
        }
        let deleted = apply(&s, Change::DeleteTenant(name.clone())).await;
        for t in tasks {
            t.await.unwrap();
        }
        let only = EntryFilter {
            tenants: Some(vec![name.clone()]),
            ..EntryFilter::default()
        };
        let left = s.list_entries(&only, &Page::first(10)).await.unwrap().0;
        let exists = s.get_tenant(&name).await.unwrap().is_some();
        assert!(
            exists || left.is_empty(),
            "round {round}: deleted {deleted:?} but {} entries remain",
            left.len()
        );
        assert_eq!(exists, deleted.is_err(), "round {round}: {deleted:?}");
    }
}
