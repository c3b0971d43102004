//! The admin API's Kubernetes subjects: [`KubernetesAuthenticator`] against
//! a fake API server, whose TokenReview verifies real service-account JWTs
//! and whose SubjectAccessReview decides by the rules the test sets.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_ca::admin::{AdminDefaults, AdminService, socket};
use meshid_ca::rbac::kubernetes::{API_GROUP, RESOURCE, TTL};
use meshid_ca::rbac::{Authorizer, AuthorizerParts};
use meshid_ca::rbac::{
    KubeAuthenticator, KubeUser, KubernetesAuthenticator, MAX_BEARER_TOKEN, Role,
};
use meshid_ca::store::{self, AuditEvent, Change, Store, Tenant};
use meshid_proto::ca::{self as pb, admin_client::AdminClient};
use meshid_runtime::clock::ManualClock;
use meshid_tests::kube::sa_token::DEFAULT_ISSUER;
use meshid_tests::kube::{AccessRule, FakeApiServer, SaClaims};
use tonic::Code;
use tonic::transport::Channel;

const NS: &str = "payments";
const SA: &str = "deployer";

struct Cluster {
    api: FakeApiServer,
    clock: ManualClock,
    kube: KubernetesAuthenticator,
}

impl Cluster {
    async fn start(dir: &Path) -> Self {
        let api = FakeApiServer::start().await;
        let kubeconfig = dir.join("kubeconfig");
        api.write_kubeconfig(&kubeconfig, "meshid-ca");
        let clock = ManualClock::new(SystemTime::now());
        let kube = KubernetesAuthenticator::with_clock(Some(kubeconfig), Arc::new(clock.clone()));
        Self { api, clock, kube }
    }

    /// A token of the service account `payments:deployer`, bound to no pod,
    /// for the API server's own audience.
    fn token(&self) -> String {
        let claims = SaClaims::bound(
            NS,
            SA,
            "",
            "",
            None,
            DEFAULT_ISSUER,
            Duration::from_secs(600),
        );
        self.api.sa_issuer().mint(&claims)
    }

    /// How many requests of `resource` (`tokenreviews`,
    /// `subjectaccessreviews`) the API server got.
    fn calls(&self, resource: &str) -> usize {
        self.api
            .requests()
            .iter()
            .filter(|r| r.resource == resource)
            .count()
    }
}

fn deployer() -> KubeUser {
    KubeUser {
        name: format!("system:serviceaccount:{NS}:{SA}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{NS}"),
            "system:authenticated".into(),
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_review_names_the_user_and_groups_and_is_cached() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path()).await;
    let token = c.token();

    let user = c.kube.review(&token).await.unwrap();
    assert_eq!(user, deployer());
    assert_eq!(c.calls("tokenreviews"), 1);
    // The answer is reused for the cache's lifetime, then asked again.
    assert_eq!(c.kube.review(&token).await.unwrap(), user);
    assert_eq!(c.calls("tokenreviews"), 1);
    c.clock.advance(TTL);
    assert_eq!(c.kube.review(&token).await.unwrap(), user);
    assert_eq!(c.calls("tokenreviews"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_oversized_tokens_are_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path()).await;

    let forged = c.api.sa_issuer().mint_forged(&SaClaims::bound(
        NS,
        SA,
        "",
        "",
        None,
        DEFAULT_ISSUER,
        Duration::from_secs(600),
    ));
    for bad in ["not-a-jwt", forged.as_str()] {
        let e = c.kube.review(bad).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        assert!(
            e.message()
                .starts_with("the Kubernetes API server refused the bearer token: "),
            "{e:?}"
        );
    }
    let reviews = c.calls("tokenreviews");
    assert_eq!(reviews, 2);
    // A refusal is cached too: the same bad token is not sent again.
    let e = c.kube.review("not-a-jwt").await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert_eq!(c.calls("tokenreviews"), reviews);

    // Oversized or empty: refused without asking the API server.
    for bad in ["x".repeat(MAX_BEARER_TOKEN + 1), String::new()] {
        let e = c.kube.review(&bad).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        assert!(e.message().contains("bytes"), "{e:?}");
    }
    assert_eq!(c.calls("tokenreviews"), reviews);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_access_reviews_grant_meshid_roles_on_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path()).await;
    let user = deployer();
    // The user may operate the tenant payments; its namespace's service
    // accounts may view it; the group ops is cluster-admin.
    c.api.allow(
        AccessRule::user(&user.name, &["operator"], API_GROUP, RESOURCE).names(&["payments"]),
    );
    c.api.allow(
        AccessRule::group(
            "system:serviceaccounts:payments",
            &["viewer"],
            API_GROUP,
            RESOURCE,
        )
        .names(&["payments"]),
    );
    c.api.allow(AccessRule::group(
        "ops",
        &["cluster-admin"],
        API_GROUP,
        RESOURCE,
    ));

    for (role, tenant, want) in [
        (Role::Operator, "payments", true),
        (Role::Viewer, "payments", true),
        (Role::Admin, "payments", false),
        (Role::Operator, "shop", false),
        (Role::ClusterAdmin, "", false),
    ] {
        let got = c.kube.allowed(&user, role, tenant).await.unwrap();
        assert_eq!(got, want, "{role:?} on {tenant:?}");
    }
    let ops = KubeUser {
        name: "alice".into(),
        groups: vec!["ops".into()],
    };
    assert!(c.kube.allowed(&ops, Role::ClusterAdmin, "").await.unwrap());
    // A rule on other resources grants nothing here.
    c.api.allow(AccessRule::user("bob", &["*"], "", "pods"));
    let bob = KubeUser {
        name: "bob".into(),
        groups: Vec::new(),
    };
    assert!(
        !c.kube
            .allowed(&bob, Role::Viewer, "payments")
            .await
            .unwrap()
    );

    // Roles nest as meshid's: admin granted there answers for viewer
    // (viewer, operator, then admin asked).
    c.api
        .allow(AccessRule::user("carol", &["admin"], API_GROUP, RESOURCE).names(&["payments"]));
    let carol = KubeUser {
        name: "carol".into(),
        groups: Vec::new(),
    };
    assert!(
        c.kube
            .allowed(&carol, Role::Viewer, "payments")
            .await
            .unwrap()
    );
    assert!(
        !c.kube
            .allowed(&carol, Role::ClusterAdmin, "")
            .await
            .unwrap()
    );

    // Each question was asked once (a role on a tenant: that role and the
    // stronger ones until one is allowed); answers are cached by question.
    let asked = c.calls("subjectaccessreviews");
    assert_eq!(asked, 1 + 1 + 1 + 2 + 1 + 1 + 3 + 3 + 1);
    c.api.clear_rules();
    assert!(
        c.kube
            .allowed(&user, Role::Operator, "payments")
            .await
            .unwrap()
    );
    assert_eq!(c.calls("subjectaccessreviews"), asked);
    // Different groups are a different question.
    let fewer = KubeUser {
        groups: Vec::new(),
        ..user.clone()
    };
    assert!(
        !c.kube
            .allowed(&fewer, Role::Operator, "payments")
            .await
            .unwrap()
    );
    assert_eq!(c.calls("subjectaccessreviews"), asked + 2);
    // After the cache's lifetime, the API server decides again.
    c.clock.advance(TTL);
    assert!(
        !c.kube
            .allowed(&user, Role::Operator, "payments")
            .await
            .unwrap()
    );
    assert_eq!(c.calls("subjectaccessreviews"), asked + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_that_does_not_answer_is_unavailable_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let kubeconfig = dir.path().join("silent.kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": format!("http://{addr}")}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        })
        .to_string(),
    )
    .unwrap();
    let kube =
        KubernetesAuthenticator::new(Some(kubeconfig)).with_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let e = kube.review("some-token").await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        e.message()
            .contains("did not answer the TokenReview within 300ms"),
        "{e:?}"
    );
    let e = kube
        .allowed(&deployer(), Role::Viewer, "payments")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    hold.abort();

    // A kubeconfig that is missing: Unavailable, naming it; tried again later.
    let missing = dir.path().join("missing.kubeconfig");
    let kube = KubernetesAuthenticator::new(Some(missing.clone()));
    let e = kube.review("some-token").await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        e.message().contains(&missing.display().to_string()),
        "{e:?}"
    );
}

/// An admin socket whose caller (this process) holds no role of its own:
/// no bindings, no implicit socket cluster-admins; Kubernetes bearer
/// tokens are checked with `kube`.
async fn admin_socket(
    dir: &Path,
    kube: KubernetesAuthenticator,
) -> (AdminClient<Channel>, Arc<dyn Store>) {
    let store = store::open(&store::StoreUrl::sqlite_file(&dir.join("ca.db")))
        .await
        .unwrap();
    for (name, prefix) in [("payments", "ns/payments"), ("shop", "ns/shop")] {
        let tenant = Tenant {
            name: name.into(),
            spiffe_id_prefixes: vec![format!("spiffe://example.org/{prefix}")],
            k8s_namespaces: Vec::new(),
            allowed_parents: Vec::new(),
            federates_with: Vec::new(),
            created_at: SystemTime::UNIX_EPOCH,
        };
        let event = AuditEvent {
            actor: "config".into(),
            action: "tenant.create".into(),
            tenant: name.into(),
            target: name.into(),
            result: "ok".into(),
            ..AuditEvent::default()
        };
        store
            .audited(Change::CreateTenant(tenant), event)
            .await
            .unwrap();
    }
    let authorizer = Authorizer::new(AuthorizerParts {
        store: store.clone(),
        config: Vec::new(),
        admin_ids: Vec::new(),
        socket_admins: Vec::new(),
        kube: Some(Arc::new(kube)),
        refresh: Duration::from_secs(5),
    });
    let service = AdminService::new(
        store.clone(),
        "example.org".parse().unwrap(),
        AdminDefaults::default(),
    )
    .with_authorizer(authorizer);
    let sock = dir.join("run/admin.sock");
    let listener = socket::bind(&sock).unwrap();
    tokio::spawn(socket::serve(service, listener, std::future::pending()));
    let channel = meshid_runtime::uds::channel(&sock).await.unwrap();
    (AdminClient::new(channel), store)
}

fn bearer<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_call_with_a_bearer_token_gets_the_roles_kubernetes_grants() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path()).await;
    let token = c.token();
    let user = deployer();
    c.api.allow(
        AccessRule::user(&user.name, &["operator"], API_GROUP, RESOURCE).names(&["payments"]),
    );
    let kube = KubernetesAuthenticator::with_clock(
        Some(dir.path().join("kubeconfig")),
        Arc::new(c.clock.clone()),
    );
    let (mut admin, store) = admin_socket(dir.path(), kube).await;

    // Who the CA sees: the Kubernetes user and groups, then the uid.
    let me = admin
        .who_am_i(bearer(pb::WhoAmIRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.subjects[0], format!("k8s-user:{}", user.name));
    assert!(
        me.subjects
            .contains(&format!("k8s-group:system:serviceaccounts:{NS}")),
        "{:?}",
        me.subjects
    );

    // Kubernetes RBAC grants operator on payments: viewer's reads there,
    // nothing on shop, nothing platform-wide.
    let got = admin
        .get_tenant(bearer(
            pb::GetTenantRequest {
                name: "payments".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.name, "payments");
    let e = admin
        .get_tenant(bearer(
            pb::GetTenantRequest {
                name: "shop".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("viewer"), "{e:?}");
    assert!(e.message().contains(&user.name), "{e:?}");
    let listed = admin
        .list_tenants(bearer(pb::ListTenantsRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = listed.tenants.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["payments"]);
    let e = admin
        .delete_tenant(bearer(
            pb::DeleteTenantRequest {
                name: "payments".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("cluster-admin"), "{e:?}");
    assert!(store.get_tenant("payments").await.unwrap().is_some());

    // Without the token, the uid alone holds nothing; a bad token is refused.
    let e = admin
        .get_tenant(pb::GetTenantRequest {
            name: "payments".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = admin
        .get_tenant(bearer(
            pb::GetTenantRequest {
                name: "payments".into(),
            },
            "not-a-jwt",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
}
