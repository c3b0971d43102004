//! The whole CA in process: config tenants and bindings at start-up, and
//! the implicit roles of mTLS callers (`admin_ids`, entries with
//! `admin = true`).

use meshid_ca::config::{BindingConfig, CaConfig, RbacConfig, TenantConfig};
use meshid_ca::server::CaServer;
use meshid_ca::store::{AuditFilter, NewEntry};
use meshid_identity::{PrivateKey, Selector, TrustBundle};
use meshid_proto::ca::{self as pb, SignX509SvidsRequest, SvidRequest, svid_result};
use meshid_tests::ClientSvid;
use meshid_tests::node::ca_channel;
use rustls::pki_types::CertificateDer;
use tonic::Code;

use super::server;

fn payments() -> TenantConfig {
    TenantConfig {
        name: "payments".into(),
        spiffe_id_prefixes: vec!["spiffe://example.org/ns/payments".into()],
        k8s_namespaces: vec!["payments".into()],
        allowed_parents: vec!["spiffe://example.org/meshid/agent".into()],
        federates_with: Vec::new(),
    }
}

fn config(dir: &std::path::Path, tenants: Vec<TenantConfig>) -> CaConfig {
    CaConfig {
        tenants,
        rbac: RbacConfig {
            bindings: vec![BindingConfig {
                subject: "uid:1001".into(),
                role: "operator".into(),
                tenant: "payments".into(),
            }],
            ..RbacConfig::default()
        },
        admin_ids: vec!["spiffe://example.org/ops/root-tool".parse().unwrap()],
        ..server::config(dir)
    }
}

#[tokio::test]
async fn config_tenants_and_bindings_apply_at_start_up() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca = server::start(config(dir.path(), vec![payments()])).await;
    let stored = ca.store.get_tenant("payments").await.unwrap().unwrap();
    assert_eq!(stored.k8s_namespaces, ["payments"]);
    let records = ca
        .store
        .list_audit(&AuditFilter::default(), 0, 100)
        .await
        .unwrap();
    let created: Vec<_> = records
        .iter()
        .filter(|r| r.event.action == "tenant.create")
        .collect();
    assert_eq!(created.len(), 1, "{records:#?}");
    assert_eq!(created[0].event.actor, "config");
    // A uid binding opens the socket to every local user.
    let mode = std::fs::metadata(&ca.admin_socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o666);
    // The config binding is listed, from the config.
    let mut admin = admin_socket(&ca).await;
    let bindings = admin
        .list_bindings(pb::ListBindingsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .bindings;
    assert!(
        bindings
            .iter()
            .any(|b| b.subject == "uid:1001" && b.source == "config"),
        "{bindings:?}"
    );
    ca.shutdown().await.unwrap();

    // The same config again: nothing new.
    let ca = server::start(config(dir.path(), vec![payments()])).await;
    let records = ca
        .store
        .list_audit(&AuditFilter::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(
        records
            .iter()
            .filter(|r| r.event.action == "tenant.create")
            .count(),
        1
    );
    ca.shutdown().await.unwrap();

    // A config tenant that differs from the stored one stops the CA.
    let changed = TenantConfig {
        spiffe_id_prefixes: vec!["spiffe://example.org/ns/pay".into()],
        ..payments()
    };
    let err = CaServer::start(config(dir.path(), vec![changed]).validate().unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("payments"), "{err}");
    assert!(err.contains("spiffe_id_prefixes"), "{err}");

    // A binding naming a tenant the config lacks is refused at load.
    let mut cfg = config(dir.path(), Vec::new());
    cfg.tenants.clear();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("rbac.bindings"), "{err}");
}

async fn admin_socket(ca: &CaServer) -> pb::admin_client::AdminClient<tonic::transport::Channel> {
    super::connect(ca.admin_socket.clone()).await
}

/// An SVID for `path`, obtained as a workload of `agent` would.
async fn svid_for(
    ca: &CaServer,
    bundle: &TrustBundle,
    agent: &server::Agent,
    path: &str,
    admin: bool,
) -> (Vec<CertificateDer<'static>>, PrivateKey) {
    let mut e = NewEntry::new(
        format!("spiffe://example.org/{path}").parse().unwrap(),
        agent.id.clone(),
        vec![Selector::parse("unix:uid:1000").unwrap()],
    );
    e.admin = admin;
    e.tenant = if path.starts_with("ns/payments/") {
        "payments".into()
    } else {
        String::new()
    };
    let entry = ca.store.create_entry(e).await.unwrap();
    let key = PrivateKey::generate_p256().unwrap();
    let resp = meshid_tests::node_client(ca.node_addr, bundle, Some(agent.svid()))
        .await
        .sign_x509_svids(SignX509SvidsRequest {
            requests: vec![SvidRequest {
                entry_id: entry.id,
                csr: meshid_tests::node::csr(&key),
                ttl_seconds: 0,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let svid = match resp.results[0].result.as_ref().unwrap() {
        svid_result::Result::Svid(s) => s.clone(),
        svid_result::Result::Error(e) => panic!("signing failed: {e:?}"),
    };
    let chain = svid
        .cert_chain
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    (chain, key)
}

#[tokio::test]
async fn mtls_callers_hold_the_roles_of_admin_ids_and_admin_entries() {
    let dir = tempfile::tempdir().unwrap();
    let ca = server::start(config(dir.path(), vec![payments()])).await;
    let bundle = ca.authority.bundle().as_ref().clone();
    let agent = server::attest(&ca, &bundle).await;
    let tool = svid_for(&ca, &bundle, &agent, "ns/payments/tool", true).await;
    let plain = svid_for(&ca, &bundle, &agent, "ns/payments/web", false).await;
    let root = svid_for(&ca, &bundle, &agent, "ops/root-tool", false).await;
    let platform_admin = svid_for(&ca, &bundle, &agent, "ops/flagged", true).await;
    let client = |svid: &(Vec<CertificateDer<'static>>, PrivateKey)| {
        let (chain, key) = (svid.0.clone(), svid.1.clone());
        let addr = ca.node_addr;
        let bundle = bundle.clone();
        async move {
            let svid = ClientSvid {
                chain: &chain,
                key: &key,
            };
            pb::admin_client::AdminClient::new(ca_channel(addr, &bundle, Some(svid)).await)
        }
    };
    let payments_token = pb::CreateJoinTokenRequest {
        tenant: "payments".into(),
        ..Default::default()
    };
    let new_tenant = pb::CreateTenantRequest {
        tenant: Some(pb::Tenant {
            name: "cards".into(),
            spiffe_id_prefixes: vec!["spiffe://example.org/ns/cards".into()],
            ..Default::default()
        }),
    };

    // admin = true in a tenant: admin of that tenant, nothing more.
    let mut c = client(&tool).await;
    let who = c.who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner();
    assert_eq!(who.subjects, ["spiffe://example.org/ns/payments/tool"]);
    assert_eq!(who.roles.len(), 1, "{who:?}");
    assert_eq!(
        (
            who.roles[0].role.as_str(),
            who.roles[0].tenant.as_str(),
            who.roles[0].source.as_str()
        ),
        ("admin", "payments", "implicit")
    );
    let token = c
        .create_join_token(payments_token.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(token.tenant, "payments");
    let err = c.create_tenant(new_tenant.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("lacks role cluster-admin"));

    // No flag: no role.
    let mut c = client(&plain).await;
    let err = c
        .create_join_token(payments_token.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message()
            .contains("spiffe://example.org/ns/payments/web lacks role admin")
    );

    // admin = true outside every tenant, and admin_ids: cluster-admins.
    for svid in [&platform_admin, &root] {
        let mut c = client(svid).await;
        let who = c.who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner();
        assert!(
            who.roles.iter().any(|r| r.role == "cluster-admin"),
            "{who:?}"
        );
    }
    let mut c = client(&root).await;
    c.create_tenant(new_tenant).await.unwrap();
    let records = ca
        .store
        .list_audit(&AuditFilter::default(), 0, 1000)
        .await
        .unwrap();
    let by_root = records
        .iter()
        .find(|r| {
            r.event.action == "tenant.create" && r.event.target == "cards" && r.event.result == "ok"
        })
        .unwrap();
    // The tool's attempt before was denied, and recorded as such.
    let denied = records
        .iter()
        .find(|r| r.event.target == "cards" && r.event.result.starts_with("denied:"))
        .unwrap();
    assert_eq!(denied.event.actor, "spiffe://example.org/ns/payments/tool");
    assert_eq!(by_root.event.actor, "spiffe://example.org/ops/root-tool");
    ca.shutdown().await.unwrap();
}

#[tokio::test]
async fn rotation_steps_are_recorded_after_they_ran() {
    let dir = tempfile::tempdir().unwrap();
    let ca = server::start(server::config(dir.path())).await;
    let mut admin = admin_socket(&ca).await;
    let prepare = pb::PrepareKeyRequest {
        kind: pb::KeyKind::X509.into(),
    };
    let slot = admin.prepare_key(prepare).await.unwrap().into_inner();
    let err = admin.prepare_key(prepare).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let records = ca
        .store
        .list_audit(&AuditFilter::default(), 0, 1000)
        .await
        .unwrap();
    let steps: Vec<_> = records
        .iter()
        .filter(|r| r.event.action == "key.prepare")
        .collect();
    assert_eq!(steps.len(), 2, "{records:#?}");
    assert_eq!(steps[0].event.result, "ok");
    assert_eq!(steps[0].event.target, slot.id);
    assert!(
        steps[1].event.result.starts_with("failed: "),
        "{:?}",
        steps[1]
    );
    ca.shutdown().await.unwrap();
}
