//! Tenants and roles over the admin socket: one store, one admin service
//! per role under test, each binding this test process's uid (the socket
//! peer) to that role in its config and holding no implicit cluster-admin.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use meshid_ca::admin::{AdminDefaults, AdminService, socket};
use meshid_ca::rbac::{Authorizer, AuthorizerParts, Role, RoleBinding};
use meshid_ca::store::AuditFilter;
use meshid_proto::ca::{self as pb, admin_client::AdminClient, entry_result};
use tonic::Code;
use tonic::transport::Channel;

use super::{Harness, created, item_error, start, td};

/// This process's uid: the admin socket's peer in these tests.
pub(super) fn my_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

/// An admin client on a new socket over `h`'s store whose caller (this
/// process) holds exactly `roles` (role, tenant) from the config.
pub(super) async fn client_as(h: &Harness, roles: &[(Role, &str)]) -> AdminClient<Channel> {
    let subject = format!("uid:{}", my_uid());
    let config = roles
        .iter()
        .map(|(role, tenant)| RoleBinding {
            subject: subject.clone(),
            role: *role,
            tenant: (*tenant).to_owned(),
            created_at: std::time::UNIX_EPOCH,
        })
        .collect();
    let authorizer = Authorizer::new(AuthorizerParts {
        store: h.store.clone(),
        config,
        admin_ids: Vec::new(),
        socket_admins: Vec::new(),
        kube: None,
        refresh: Duration::from_secs(5),
    });
    let service = AdminService::new(h.store.clone(), td(), AdminDefaults::default())
        .with_authorizer(authorizer);
    let n = rand_suffix();
    let sock = h._dir.path().join(format!("run/as-{n}.sock"));
    let listener = socket::bind(&sock).unwrap();
    tokio::spawn(socket::serve(service, listener, std::future::pending()));
    super::connect(sock).await
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub(super) fn tenant(name: &str, prefix: &str) -> pb::Tenant {
    pb::Tenant {
        name: name.into(),
        spiffe_id_prefixes: vec![format!("spiffe://example.org/{prefix}")],
        allowed_parents: vec!["spiffe://example.org/meshid/agent/k8s_psat/prod".into()],
        federates_with: vec!["partner.org".into()],
        ..Default::default()
    }
}

/// Tenants a (`/ns/a`) and b (`/ns/b`), made by the harness's root caller.
pub(super) async fn two_tenants(h: &mut Harness) {
    for (name, prefix) in [("a", "ns/a"), ("b", "ns/b")] {
        h.client
            .create_tenant(pb::CreateTenantRequest {
                tenant: Some(tenant(name, prefix)),
            })
            .await
            .unwrap();
    }
}

fn workload(path: &str, parent: &str) -> pb::Entry {
    pb::Entry {
        spiffe_id: format!("spiffe://example.org/{path}"),
        parent_id: format!("spiffe://example.org/{parent}"),
        selectors: vec![pb::Selector {
            r#type: "unix".into(),
            value: "uid:1000".into(),
        }],
        ..Default::default()
    }
}

async fn create_one(c: &mut AdminClient<Channel>, e: pb::Entry) -> entry_result::Result {
    c.create_entries(pb::CreateEntriesRequest { entries: vec![e] })
        .await
        .unwrap()
        .into_inner()
        .results
        .remove(0)
        .result
        .unwrap()
}

fn assert_denied(s: &tonic::Status, role: &str) {
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert!(
        s.message().contains(&format!("lacks role {role}")),
        "the denial names {role}: {}",
        s.message()
    );
    assert!(s.message().contains("meshid rbac bind"), "{}", s.message());
}

fn assert_item_denied(r: &entry_result::Result, role: &str) {
    let e = item_error(r);
    assert_denied(
        &tonic::Status::new(Code::from(e.code), e.message.clone()),
        role,
    );
}

#[tokio::test]
async fn tenants_are_checked_when_created() {
    let mut h = start().await;
    two_tenants(&mut h).await;
    let refused = [
        (tenant("c", "ns/a/sub"), "overlaps"),
        (tenant("c", "ns"), "overlaps"),
        (tenant("c", "ns/b"), "overlaps"),
        (tenant("c", "meshid/agent"), "reserves"),
        (tenant("c", "ns/c/"), "ends with '/'"),
        (
            pb::Tenant {
                federates_with: vec!["example.org".into()],
                ..tenant("c", "ns/c")
            },
            "own trust domain",
        ),
        (
            pb::Tenant {
                spiffe_id_prefixes: vec!["spiffe://other.org/ns/c".into()],
                ..tenant("c", "ns/c")
            },
            "not in this CA's trust domain",
        ),
        (tenant("C", "ns/c"), "name"),
    ];
    for (t, needle) in refused {
        let err = h
            .client
            .create_tenant(pb::CreateTenantRequest {
                tenant: Some(t.clone()),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{t:?}: {err:?}");
        assert!(
            err.message().contains(needle),
            "{needle}: {}",
            err.message()
        );
    }
    let list = h
        .client
        .list_tenants(pb::ListTenantsRequest {})
        .await
        .unwrap()
        .into_inner()
        .tenants;
    let names: Vec<_> = list.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(list[0].spiffe_id_prefixes, ["spiffe://example.org/ns/a"]);
}

#[tokio::test]
async fn entries_stay_inside_their_tenant() {
    let mut h = start().await;
    two_tenants(&mut h).await;
    let mut op = client_as(&h, &[(Role::Operator, "a")]).await;

    // Within a, under a node alias of a or an allowed parent.
    let e = create_one(&mut op, workload("ns/a/web", "ns/a/node")).await;
    assert_eq!(created(&e).tenant, "a");
    let shared = "meshid/agent/k8s_psat/prod/node-1";
    let e = create_one(&mut op, workload("ns/a/api", shared)).await;
    assert_eq!(created(&e).tenant, "a");

    // Another tenant's or the platform's IDs: the role is missing there.
    assert_item_denied(
        &create_one(&mut op, workload("ns/b/web", "ns/b/node")).await,
        "operator on tenant b",
    );
    assert_item_denied(
        &create_one(&mut op, workload("web", "node")).await,
        "cluster-admin",
    );

    // A parent outside the tenant, a foreign trust domain it may not use,
    // a tenant named that does not hold the ID.
    let r = create_one(
        &mut op,
        workload("ns/a/x", "meshid/agent/join_token/0123456789abcdef"),
    )
    .await;
    let err = item_error(&r);
    assert_eq!(Code::from(err.code), Code::InvalidArgument, "{err:?}");
    assert!(err.message.contains("parent_id"), "{}", err.message);
    let r = create_one(&mut op, workload("ns/a/x", "ns/b/node")).await;
    assert!(item_error(&r).message.contains("parent_id"));
    let mut fed = workload("ns/a/fed", "ns/a/node");
    fed.federates_with = vec!["evil.org".into()];
    let r = create_one(&mut op, fed.clone()).await;
    assert!(item_error(&r).message.contains("federates_with"));
    fed.federates_with = vec!["partner.org".into()];
    created(&create_one(&mut op, fed).await);
    let mut named = workload("ns/a/named", "ns/a/node");
    named.tenant = "b".into();
    let r = create_one(&mut op, named).await;
    assert!(item_error(&r).message.contains("outside tenant b"));

    // The admin flag takes admin; downstream takes cluster-admin.
    let mut flagged = workload("ns/a/tool", "ns/a/node");
    flagged.admin = true;
    assert_item_denied(
        &create_one(&mut op, flagged.clone()).await,
        "admin on tenant a",
    );
    let mut admin = client_as(&h, &[(Role::Admin, "a")]).await;
    assert!(created(&create_one(&mut admin, flagged).await).admin);
    let mut down = workload("ns/a/ca", "ns/a/node");
    down.downstream = true;
    assert_item_denied(&create_one(&mut admin, down).await, "cluster-admin");

    // An update cannot move an entry to another tenant.
    let web = h
        .client
        .list_entries(pb::ListEntriesRequest {
            by_spiffe_id: "spiffe://example.org/ns/a/web".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries
        .remove(0);
    let moved = pb::Entry {
        spiffe_id: "spiffe://example.org/ns/b/web".into(),
        ..web.clone()
    };
    let err = h
        .client
        .update_entry(pb::UpdateEntryRequest { entry: Some(moved) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("never changes"), "{}", err.message());
    let renamed = pb::Entry {
        spiffe_id: "spiffe://example.org/ns/a/web2".into(),
        ..web.clone()
    };
    let updated = op
        .update_entry(pb::UpdateEntryRequest {
            entry: Some(renamed),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.tenant, "a");
    let mut viewer = client_as(&h, &[(Role::Viewer, "a")]).await;
    let err = viewer
        .delete_entry(pb::DeleteEntryRequest { id: web.id.clone() })
        .await
        .unwrap_err();
    assert_denied(&err, "operator on tenant a");
    op.delete_entry(pb::DeleteEntryRequest { id: web.id })
        .await
        .unwrap();
}

#[tokio::test]
async fn reads_are_filtered_to_the_callers_tenants() {
    let mut h = start().await;
    two_tenants(&mut h).await;
    for (path, parent) in [
        ("ns/a/web", "ns/a/node"),
        ("ns/b/web", "ns/b/node"),
        ("web", "node"),
    ] {
        created(&create_one(&mut h.client, workload(path, parent)).await);
    }
    let mut viewer = client_as(&h, &[(Role::Viewer, "a")]).await;
    let ids = |entries: Vec<pb::Entry>| -> Vec<String> {
        entries.into_iter().map(|e| e.spiffe_id).collect()
    };
    let seen = viewer
        .list_entries(pb::ListEntriesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(ids(seen), ["spiffe://example.org/ns/a/web"]);
    let err = viewer
        .list_entries(pb::ListEntriesRequest {
            by_tenant: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_denied(&err, "viewer on tenant b");
    let all = h
        .client
        .list_entries(pb::ListEntriesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(all.len(), 3);
    let b_entry = all.iter().find(|e| e.tenant == "b").unwrap();
    let err = viewer
        .get_entry(pb::GetEntryRequest {
            id: b_entry.id.clone(),
        })
        .await
        .unwrap_err();
    assert_denied(&err, "viewer on tenant b");
    let tenants = viewer
        .list_tenants(pb::ListTenantsRequest {})
        .await
        .unwrap()
        .into_inner()
        .tenants;
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0].name, "a");
    viewer
        .get_bundle(pb::GetBundleRequest::default())
        .await
        .map(|_| ())
        .or_else(|e| {
            // No bundle in a bare store: but the caller got past authorization.
            (e.code() == Code::Unavailable).then_some(()).ok_or(e)
        })
        .unwrap();
    let err = viewer
        .create_tenant(pb::CreateTenantRequest {
            tenant: Some(tenant("c", "ns/c")),
        })
        .await
        .unwrap_err();
    assert_denied(&err, "cluster-admin");

    // A caller without any role sees nothing and learns why.
    let mut nobody = client_as(&h, &[]).await;
    let err = nobody
        .list_entries(pb::ListEntriesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("lacks role viewer on any tenant"));
    let err = nobody
        .get_bundle(pb::GetBundleRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let who = nobody
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(who.subjects.contains(&format!("uid:{}", my_uid())));
    assert!(who.roles.is_empty());
}

#[tokio::test]
async fn join_tokens_belong_to_their_tenant() {
    let mut h = start().await;
    two_tenants(&mut h).await;
    let mut admin = client_as(&h, &[(Role::Admin, "a")]).await;
    let token = admin
        .create_join_token(pb::CreateJoinTokenRequest {
            tenant: "a".into(),
            spiffe_id: "spiffe://example.org/ns/a/node-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(token.tenant, "a");
    let err = admin
        .create_join_token(pb::CreateJoinTokenRequest {
            tenant: "a".into(),
            spiffe_id: "spiffe://example.org/ns/b/node-1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("outside tenant a"),
        "{}",
        err.message()
    );
    let err = admin
        .create_join_token(pb::CreateJoinTokenRequest {
            tenant: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_denied(&err, "admin on tenant b");
    let err = admin
        .create_join_token(pb::CreateJoinTokenRequest::default())
        .await
        .unwrap_err();
    assert_denied(&err, "cluster-admin");
    let mut op = client_as(&h, &[(Role::Operator, "a")]).await;
    let err = op
        .create_join_token(pb::CreateJoinTokenRequest {
            tenant: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_denied(&err, "admin on tenant a");
    let err = h
        .client
        .create_join_token(pb::CreateJoinTokenRequest {
            tenant: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // A platform token's alias may not lie in a tenant.
    let err = h
        .client
        .create_join_token(pb::CreateJoinTokenRequest {
            spiffe_id: "spiffe://example.org/ns/a/node-2".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("--tenant a"), "{}", err.message());
}

#[tokio::test]
async fn bindings_are_granted_by_the_tenants_admin() {
    let mut h = start().await;
    two_tenants(&mut h).await;
    let me = format!("uid:{}", my_uid());
    let mut admin = client_as(&h, &[(Role::Admin, "a")]).await;
    let bind = |subject: &str, role: &str, tenant: &str| pb::BindRequest {
        binding: Some(pb::RoleBinding {
            subject: subject.into(),
            role: role.into(),
            tenant: tenant.into(),
            ..Default::default()
        }),
    };
    let b = admin
        .bind(bind("uid:4242", "operator", "a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((b.source.as_str(), b.tenant.as_str()), ("store", "a"));
    let err = admin
        .bind(bind("uid:4242", "operator", "b"))
        .await
        .unwrap_err();
    assert_denied(&err, "admin on tenant b");
    let err = admin
        .bind(bind("uid:4242", "cluster-admin", ""))
        .await
        .unwrap_err();
    assert_denied(&err, "cluster-admin");
    for (req, needle) in [
        (bind("alice", "viewer", "a"), "not a subject"),
        (bind("uid:1", "boss", "a"), "unknown role"),
        (bind("uid:1", "viewer", ""), "tenant is empty"),
        (bind("uid:1", "cluster-admin", "a"), "without a tenant"),
    ] {
        let err = admin.bind(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains(needle),
            "{needle}: {}",
            err.message()
        );
    }
    // The config's binding is listed but cannot be unbound here.
    let listed = admin
        .list_bindings(pb::ListBindingsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .bindings;
    let seen: Vec<_> = listed
        .iter()
        .map(|b| (b.subject.as_str(), b.role.as_str(), b.source.as_str()))
        .collect();
    assert!(
        seen.contains(&("uid:4242", "operator", "store")),
        "{seen:?}"
    );
    assert!(seen.contains(&(me.as_str(), "admin", "config")), "{seen:?}");
    assert!(listed.iter().all(|b| b.tenant == "a"), "{listed:?}");
    let err = admin
        .unbind(pb::UnbindRequest {
            binding: bind(&me, "admin", "a").binding,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    admin
        .unbind(pb::UnbindRequest {
            binding: bind("uid:4242", "operator", "a").binding,
        })
        .await
        .unwrap();

    // A stored binding gives this caller a role on a service that had none.
    let mut later = client_as(&h, &[]).await;
    h.client.bind(bind(&me, "viewer", "b")).await.unwrap();
    let who = later
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(who.roles.len(), 1, "{who:?}");
    assert_eq!(
        (who.roles[0].role.as_str(), who.roles[0].tenant.as_str()),
        ("viewer", "b")
    );
    // The root caller is an implicit cluster-admin.
    let who = h
        .client
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        who.roles
            .iter()
            .any(|r| r.role == "cluster-admin" && r.source == "implicit"),
        "{who:?}"
    );
}

#[tokio::test]
async fn writes_and_denials_are_in_the_audit_log() {
    let mut h = start().await;
    two_tenants(&mut h).await;
    let me = format!("uid:{}", my_uid());
    let mut op = client_as(&h, &[(Role::Operator, "a")]).await;
    let e = created(&create_one(&mut op, workload("ns/a/web", "ns/a/node")).await).clone();
    assert_item_denied(
        &create_one(&mut op, workload("ns/b/web", "ns/b/node")).await,
        "operator",
    );
    let r = create_one(&mut op, workload("ns/a/x", "ns/b/node")).await;
    item_error(&r);
    let records = h
        .store
        .list_audit(&AuditFilter::default(), 0, 1000)
        .await
        .unwrap();
    let find = |action: &str, result: &str| {
        records
            .iter()
            .find(|r| r.event.action == action && r.event.result.starts_with(result))
            .unwrap_or_else(|| panic!("no {action} {result} record in {records:#?}"))
    };
    let created_rec = find("entry.create", "ok");
    assert_eq!(created_rec.event.actor, me);
    assert_eq!(created_rec.event.tenant, "a");
    assert!(created_rec.event.after.contains(&e.id), "{created_rec:?}");
    let denied = find("entry.create", "denied:");
    assert_eq!(denied.event.tenant, "b");
    assert!(
        denied
            .event
            .result
            .contains("lacks role operator on tenant b")
    );
    let failed = find("entry.create", "failed:");
    assert!(failed.event.result.contains("parent_id"), "{failed:?}");
    let tenants = records
        .iter()
        .filter(|r| r.event.action == "tenant.create")
        .count();
    assert_eq!(tenants, 2);
    // Denied reads are not recorded.
    let before = records.len();
    let mut viewer = client_as(&h, &[(Role::Viewer, "a")]).await;
    let _ = viewer
        .list_entries(pb::ListEntriesRequest {
            by_tenant: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let after = h
        .store
        .list_audit(&AuditFilter::default(), 0, 1000)
        .await
        .unwrap();
    assert_eq!(after.len(), before);
}

#[tokio::test]
async fn an_opened_socket_is_usable_by_every_local_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run/admin.sock");
    let _listener = socket::bind_for(&sock, true).unwrap();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o666);
    let dir_mode = std::fs::metadata(sock.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o755);
}

/// A Kubernetes stand-in: token `alice-token` is user alice in group
/// devs, whom Kubernetes RBAC lets operate tenant a.
#[derive(Debug)]
struct FakeKube;

#[tonic::async_trait]
impl meshid_ca::rbac::KubeAuthenticator for FakeKube {
    async fn review(&self, token: &str) -> Result<meshid_ca::rbac::KubeUser, tonic::Status> {
        match token {
            "alice-token" => Ok(meshid_ca::rbac::KubeUser {
                name: "alice".into(),
                groups: vec!["devs".into()],
            }),
            _ => Err(tonic::Status::unauthenticated(
                "token refused by TokenReview",
            )),
        }
    }

    async fn allowed(
        &self,
        user: &meshid_ca::rbac::KubeUser,
        role: Role,
        tenant: &str,
    ) -> Result<bool, tonic::Status> {
        Ok(user.name == "alice" && tenant == "a" && role <= Role::Operator)
    }
}

fn bearer<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

#[tokio::test]
async fn kubernetes_users_hold_bound_and_reviewed_roles() {
    let mut h = start().await;
    two_tenants(&mut h).await;
    // The socket peer has no role here: only the token's user counts.
    let authorizer = Authorizer::new(AuthorizerParts {
        store: h.store.clone(),
        config: vec![RoleBinding {
            subject: "k8s-group:devs".into(),
            role: Role::Viewer,
            tenant: "b".into(),
            created_at: std::time::UNIX_EPOCH,
        }],
        admin_ids: Vec::new(),
        socket_admins: Vec::new(),
        kube: Some(Arc::new(FakeKube)),
        refresh: Duration::from_secs(5),
    });
    let service = AdminService::new(h.store.clone(), td(), AdminDefaults::default())
        .with_authorizer(authorizer);
    let sock = h._dir.path().join("run/kube.sock");
    let listener = socket::bind(&sock).unwrap();
    tokio::spawn(socket::serve(service, listener, std::future::pending()));
    let mut c = super::connect(sock).await;

    let who = c
        .who_am_i(bearer(pb::WhoAmIRequest {}, "alice-token"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        who.subjects
            .starts_with(&["k8s-user:alice".into(), "k8s-group:devs".into()])
    );
    // SubjectAccessReview grants operator on a; the group binding viewer on b.
    let req = pb::CreateEntriesRequest {
        entries: vec![workload("ns/a/web", "ns/a/node")],
    };
    let r = c
        .create_entries(bearer(req, "alice-token"))
        .await
        .unwrap()
        .into_inner()
        .results
        .remove(0)
        .result
        .unwrap();
    assert_eq!(created(&r).tenant, "a");
    let req = pb::ListEntriesRequest {
        by_tenant: "b".into(),
        ..Default::default()
    };
    c.list_entries(bearer(req, "alice-token")).await.unwrap();
    let req = pb::CreateJoinTokenRequest {
        tenant: "a".into(),
        ..Default::default()
    };
    let err = c
        .create_join_token(bearer(req, "alice-token"))
        .await
        .unwrap_err();
    assert!(
        err.message()
            .contains("k8s-user:alice lacks role admin on tenant a"),
        "{}",
        err.message()
    );
    let err = c
        .who_am_i(bearer(pb::WhoAmIRequest {}, "stolen"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let records = h
        .store
        .list_audit(&AuditFilter::default(), 0, 1000)
        .await
        .unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.event.action == "entry.create" && r.event.actor == "k8s-user:alice"),
        "{records:#?}"
    );

    // Without [rbac.kubernetes] a token is refused, not ignored.
    let mut plain = client_as(&h, &[(Role::Viewer, "a")]).await;
    let err = plain
        .who_am_i(bearer(pb::WhoAmIRequest {}, "alice-token"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(
        err.message().contains("[rbac.kubernetes]"),
        "{}",
        err.message()
    );
}
