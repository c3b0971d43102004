//! The admin API in-process, over a real Unix socket, on a SQLite store:
//! what an operator's `meshid entry|token|agent|bundle` calls see; tenants,
//! roles and the audit records of writes (`admin_api/tenancy.rs`); the
//! whole CA with config tenants and mTLS callers (`admin_api/startup.rs`).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshid_ca::admin::{AdminDefaults, AdminService, socket};
use meshid_ca::store::{self, Agent, KeyKind, KeySlot, SlotState, Store, StoredBundle};
use meshid_identity::x509::{CaTemplate, self_signed_ca, to_pem};
use meshid_identity::{PrivateKey, Selector, SpiffeId, TrustBundle, TrustDomain};
use meshid_proto::ca::{self as pb, admin_client::AdminClient, entry_result};
use tonic::Code;
use tonic::transport::Channel;

const NOW: u64 = 1_800_000_000;

#[path = "admin_api/entry_owner.rs"]
mod entry_owner;
#[path = "support/server.rs"]
mod server;
#[path = "admin_api/startup.rs"]
mod startup;
#[path = "admin_api/tenancy.rs"]
mod tenancy;

struct Harness {
    client: AdminClient<Channel>,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

async fn connect(path: PathBuf) -> AdminClient<Channel> {
    AdminClient::new(meshid_runtime::uds::channel(path).await.unwrap())
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ca.db");
    let store = store::open(&store::StoreUrl::sqlite_file(&db))
        .await
        .unwrap();
    let service = AdminService::new(store.clone(), td(), AdminDefaults::default())
        .with_clock(Arc::new(meshid_runtime::clock::ManualClock::new(now())))
        .with_authority_kind("self-signed");
    let sock = dir.path().join("run/admin.sock");
    let listener = socket::bind(&sock).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(socket::serve(service, listener, async move {
        let _ = stopped.await;
    }));
    Harness {
        client: connect(sock).await,
        store,
        _dir: dir,
        _stop: stop,
    }
}

fn entry(path: &str, uid: u32) -> pb::Entry {
    pb::Entry {
        spiffe_id: format!("spiffe://example.org/{path}"),
        parent_id: "spiffe://example.org/meshid/agent/join_token/0123456789abcdef".into(),
        selectors: vec![pb::Selector {
            r#type: "unix".into(),
            value: format!("uid:{uid}"),
        }],
        ..Default::default()
    }
}

async fn create(h: &mut Harness, entries: Vec<pb::Entry>) -> Vec<entry_result::Result> {
    h.client
        .create_entries(pb::CreateEntriesRequest { entries })
        .await
        .unwrap()
        .into_inner()
        .results
        .into_iter()
        .map(|r| r.result.unwrap())
        .collect()
}

fn created(r: &entry_result::Result) -> &pb::Entry {
    match r {
        entry_result::Result::Entry(e) => e,
        entry_result::Result::Error(e) => panic!("item failed: {e:?}"),
    }
}

fn item_error(r: &entry_result::Result) -> &pb::ItemError {
    match r {
        entry_result::Result::Error(e) => e,
        entry_result::Result::Entry(e) => panic!("item unexpectedly created: {e:?}"),
    }
}

#[tokio::test]
async fn socket_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let h = start().await;
    let sock = h._dir.path().join("run/admin.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(sock.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    // A second CA cannot steal a live socket.
    assert!(socket::bind(&sock).is_err());
    // Something that is not a socket is never replaced.
    let file = h._dir.path().join("not-a-socket");
    std::fs::write(&file, b"x").unwrap();
    assert!(socket::bind(Path::new(&file)).is_err());
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[tokio::test]
async fn batch_create_reports_each_item_and_stores_only_valid_ones() {
    let mut h = start().await;
    let mut with_dns = entry("web", 1000);
    with_dns.dns_names = vec!["Web.Example.org".into()];
    with_dns.x509_svid_ttl_seconds = 3600;
    let results = create(
        &mut h,
        vec![with_dns, entry("web", 1000), entry("db", 1001)],
    )
    .await;
    let web = created(&results[0]);
    assert_eq!(web.revision, 1);
    assert_eq!(web.dns_names, vec!["web.example.org"]);
    assert_eq!(web.x509_svid_ttl_seconds, 3600);
    assert_eq!(web.id.len(), 32);
    // Same ID, parent and selectors: a per-item AlreadyExists, the rest goes on.
    assert_eq!(item_error(&results[1]).code, Code::AlreadyExists as i32);
    assert_eq!(created(&results[2]).spiffe_id, "spiffe://example.org/db");
    assert_eq!(h.store.count_entries().await.unwrap(), 2);

    let got = h
        .client
        .get_entry(pb::GetEntryRequest { id: web.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&got, web);
}

#[tokio::test]
async fn invalid_entries_are_refused_with_invalid_argument_and_nothing_stored() {
    let mut h = start().await;
    let mut cases: Vec<(pb::Entry, &str)> = Vec::new();
    let mut e = entry("web", 1);
    e.spiffe_id = "spiffe://example.org/a//b".into();
    cases.push((e, "spiffe_id"));
    let mut e = entry("web", 1);
    e.spiffe_id = "spiffe://other.org/web".into();
    cases.push((e, "trust domain"));
    let mut e = entry("web", 1);
    e.parent_id = "not-an-id".into();
    cases.push((e, "parent_id"));
    let mut e = entry("web", 1);
    e.selectors[0].r#type = "UNIX".into();
    cases.push((e, "selector"));
    let mut e = entry("web", 1);
    e.selectors.clear();
    cases.push((e, "at least one selector"));
    let mut e = entry("web", 1);
    e.dns_names = vec!["bad_name.example".into()];
    cases.push((e, "dns name"));
    let mut e = entry("web", 1);
    e.dns_names = vec![format!("{}.com", "a".repeat(64))];
    cases.push((e, "63"));
    let mut e = entry("web", 1);
    e.x509_svid_ttl_seconds = 400 * 24 * 3600;
    cases.push((e, "x509_svid_ttl_seconds"));
    let mut e = entry("web", 1);
    e.federates_with = vec!["example.org".into()];
    cases.push((e, "own trust domain"));
    let mut e = entry("web", 1);
    e.id = "chosen-by-me".into();
    cases.push((e, "assigned by the CA"));

    let (entries, expected): (Vec<_>, Vec<_>) = cases.into_iter().unzip();
    let results = create(&mut h, entries).await;
    for (r, want) in results.iter().zip(expected) {
        let err = item_error(r);
        assert_eq!(err.code, Code::InvalidArgument as i32, "{err:?}");
        assert!(
            err.message.contains(want),
            "{:?} lacks {want:?}",
            err.message
        );
    }
    assert_eq!(h.store.count_entries().await.unwrap(), 0);

    let empty = h
        .client
        .create_entries(pb::CreateEntriesRequest { entries: vec![] })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn listing_pages_and_filters() {
    let mut h = start().await;
    let entries = (0..7)
        .map(|i| entry(&format!("svc{i}"), 1000 + i))
        .collect();
    for r in create(&mut h, entries).await {
        created(&r);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let resp = h
            .client
            .list_entries(pb::ListEntriesRequest {
                page_token: token,
                page_size: 3,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(resp.entries.len() <= 3);
        seen.extend(resp.entries.into_iter().map(|e| e.spiffe_id));
        if resp.next_page_token.is_empty() {
            break;
        }
        token = resp.next_page_token;
    }
    assert_eq!(pages, 3);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7);

    let by_id = h
        .client
        .list_entries(pb::ListEntriesRequest {
            by_spiffe_id: "spiffe://example.org/svc3".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.entries.len(), 1);
    let by_selector = h
        .client
        .list_entries(pb::ListEntriesRequest {
            by_selector: Some(pb::Selector {
                r#type: "unix".into(),
                value: "uid:1005".into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        by_selector.entries[0].spiffe_id,
        "spiffe://example.org/svc5"
    );
    let bad = h
        .client
        .list_entries(pb::ListEntriesRequest {
            by_parent_id: "spiffe://".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn update_checks_the_revision_and_delete_removes() {
    let mut h = start().await;
    let first = created(&create(&mut h, vec![entry("web", 1)]).await[0]).clone();

    let mut change = first.clone();
    change.selectors.push(pb::Selector {
        r#type: "unix".into(),
        value: "gid:50".into(),
    });
    change.admin = true;
    let updated = h
        .client
        .update_entry(pb::UpdateEntryRequest {
            entry: Some(change.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.selectors.len(), 2);
    assert!(updated.admin);

    // Stale revision: Aborted, and the entry keeps its state.
    let stale = h
        .client
        .update_entry(pb::UpdateEntryRequest {
            entry: Some(first.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    assert!(stale.message().contains("retry"));

    // Invalid new state: nothing written.
    let mut bad = updated.clone();
    bad.spiffe_id = "spiffe://example.org/x?y".into();
    let err = h
        .client
        .update_entry(pb::UpdateEntryRequest { entry: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let stored = h.store.get_entry(&first.id).await.unwrap().unwrap();
    assert_eq!(stored.revision, 2);

    let gone = h
        .client
        .delete_entry(pb::DeleteEntryRequest {
            id: first.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gone.id, first.id);
    let missing = h
        .client
        .get_entry(pb::GetEntryRequest { id: first.id })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(h.store.count_entries().await.unwrap(), 0);
}

#[tokio::test]
async fn join_tokens_are_shown_once_and_stored_hashed() {
    let mut h = start().await;
    let t = h
        .client
        .create_join_token(pb::CreateJoinTokenRequest {
            tenant: String::new(),
            ttl_seconds: 0,
            spiffe_id: "spiffe://example.org/node/rack1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(t.token.starts_with(&format!("{}.", t.id)));
    assert_eq!(t.expires_at, (NOW + 600) as i64);
    assert_eq!(
        t.agent_spiffe_id,
        format!("spiffe://example.org/meshid/agent/join_token/{}", t.id)
    );
    // The store accepts the token's hash once, and only before expiry.
    let hash = meshid_ca::node_attestor::join_token::hash(&t.token);
    let rec = h.store.consume_join_token(&hash, now()).await.unwrap();
    assert_eq!(rec.id, t.id);
    assert_eq!(
        rec.spiffe_id,
        Some(SpiffeId::parse("spiffe://example.org/node/rack1").unwrap())
    );

    for (ttl, alias) in [(0, "spiffe://other.org/node"), (8 * 24 * 3600, "")] {
        let err = h
            .client
            .create_join_token(pb::CreateJoinTokenRequest {
                tenant: String::new(),
                ttl_seconds: ttl,
                spiffe_id: alias.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
}

fn agent(id: &str) -> Agent {
    Agent {
        spiffe_id: SpiffeId::parse(id).unwrap(),
        attestation_type: "join_token".into(),
        serial: "01ab".into(),
        previous_serial: None,
        expires_at: now() + Duration::from_secs(3600),
        banned: false,
        selectors: vec![Selector::new("join_token", "id:0123456789abcdef").unwrap()],
        tenant: String::new(),
        created_at: now(),
        updated_at: now(),
    }
}

#[tokio::test]
async fn agents_can_be_listed_banned_and_evicted() {
    let mut h = start().await;
    let a = "spiffe://example.org/meshid/agent/join_token/aaaa";
    let b = "spiffe://example.org/meshid/agent/join_token/bbbb";
    h.store.upsert_agent(&agent(a)).await.unwrap();
    h.store.upsert_agent(&agent(b)).await.unwrap();

    let list = h
        .client
        .list_agents(pb::ListAgentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.agents.len(), 2);
    assert_eq!(list.agents[0].attestation_type, "join_token");
    assert_eq!(list.agents[0].selectors.len(), 1);

    let banned = h
        .client
        .ban_agent(pb::AgentRequest {
            spiffe_id: a.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(banned.banned);
    let stored = h
        .store
        .get_agent(&SpiffeId::parse(a).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(stored.banned);

    h.client
        .evict_agent(pb::AgentRequest {
            spiffe_id: b.into(),
        })
        .await
        .unwrap();
    let err = h
        .client
        .get_agent(pb::AgentRequest {
            spiffe_id: b.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("meshid agent list"));
    let bad = h
        .client
        .ban_agent(pb::AgentRequest {
            spiffe_id: "agent-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(h.store.count_agents().await.unwrap(), 1);
}

fn ca_cert(td: &TrustDomain) -> rustls_pki_types::CertificateDer<'static> {
    let key = PrivateKey::generate_p256().unwrap().key_pair().unwrap();
    self_signed_ca(
        &CaTemplate {
            trust_domain: td.clone(),
            common_name: "test root".into(),
            not_before: now(),
            not_after: now() + Duration::from_secs(86400),
            path_len: None,
        },
        &key,
    )
    .unwrap()
}

#[tokio::test]
async fn bundles_own_and_federated() {
    let mut h = start().await;
    // Nothing published yet.
    let err = h
        .client
        .get_bundle(pb::GetBundleRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);

    // The authority publishes the own bundle and its key slot.
    let own_root = ca_cert(&td());
    let mut own = TrustBundle::new(td());
    own.x509_authorities.push(own_root.clone());
    h.store
        .put_bundle(
            &StoredBundle {
                trust_domain: td(),
                spiffe_json: own.to_spiffe_json().into_bytes(),
                sequence: 1,
                updated_at: now(),
            },
            None,
        )
        .await
        .unwrap();
    let lease = h
        .store
        .acquire_lease("rotation", "ca-a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    h.store
        .put_key_slot(
            &KeySlot {
                id: KeySlot::slot_id("ca-a", KeyKind::X509, 1),
                replica: "ca-a".into(),
                kind: KeyKind::X509,
                generation: 1,
                state: SlotState::Active,
                key_id: "0a0b".into(),
                key_slot: "x509-ca".into(),
                key_ref: "memory".into(),
                public_pem: to_pem(std::slice::from_ref(&own_root)),
                roots_pem: to_pem(std::slice::from_ref(&own_root)),
                not_before: now(),
                not_after: now() + Duration::from_secs(86400),
                prepared_at: now(),
                activated_at: Some(now()),
                retired_at: None,
                publish_until: None,
                tainted: false,
                updated_at: now(),
            },
            &lease,
        )
        .await
        .unwrap();
    let got = h
        .client
        .get_bundle(pb::GetBundleRequest::default())
        .await
        .unwrap()
        .into_inner();
    let bundle = got.bundle.unwrap();
    assert_eq!(bundle.trust_domain, "example.org");
    assert_eq!(bundle.x509_authorities, vec![own_root.to_vec()]);
    assert_eq!(
        TrustBundle::from_spiffe_json(td(), &got.spiffe_json)
            .unwrap()
            .x509_authorities,
        vec![own_root.clone()]
    );
    let authority = h
        .client
        .get_authority(pb::GetAuthorityRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(authority.cert_chain, vec![own_root.to_vec()]);
    assert_eq!(authority.kind, "self-signed");
    assert_eq!(authority.expires_at, (NOW + 86400) as i64);

    // A federated bundle: set, read back, replace (sequence grows).
    let partner = TrustDomain::new("partner.org").unwrap();
    let mut theirs = TrustBundle::new(partner.clone());
    theirs.x509_authorities.push(ca_cert(&partner));
    let json = theirs.to_spiffe_json().into_bytes();
    let set = h
        .client
        .set_federated_bundle(pb::SetFederatedBundleRequest {
            trust_domain: "partner.org".into(),
            spiffe_json: json.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set.sequence, 1);
    let again = h
        .client
        .set_federated_bundle(pb::SetFederatedBundleRequest {
            trust_domain: "spiffe://partner.org".into(),
            spiffe_json: json,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.sequence, 2);
    let fed = h
        .client
        .get_bundle(pb::GetBundleRequest {
            trust_domain: "partner.org".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fed.bundle.unwrap().x509_authorities, set.x509_authorities);

    // Refused: own trust domain, garbage JSON, unknown trust domain.
    for (td, json, code) in [
        (
            "example.org",
            br#"{"keys":[]}"#.to_vec(),
            Code::InvalidArgument,
        ),
        ("other.org", b"not json".to_vec(), Code::InvalidArgument),
        (
            "other.org",
            br#"{"keys":[]}"#.to_vec(),
            Code::InvalidArgument,
        ),
        (
            "Bad Domain",
            br#"{"keys":[]}"#.to_vec(),
            Code::InvalidArgument,
        ),
    ] {
        let err = h
            .client
            .set_federated_bundle(pb::SetFederatedBundleRequest {
                trust_domain: td.into(),
                spiffe_json: json,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{td}: {err:?}");
    }
    let missing = h
        .client
        .get_bundle(pb::GetBundleRequest {
            trust_domain: "other.org".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.message().contains("meshid bundle set"));
    assert_eq!(h.store.list_bundles().await.unwrap().len(), 2);
}

/// The CA's own ID, agent IDs and anything else under `/meshid` cannot be
/// given to a workload: not by creating or updating an entry (batch items
/// fail alone), nor as a join token's node alias. Parents may be agents.
#[tokio::test]
async fn reserved_ids_are_refused_for_entries_and_node_aliases() {
    let mut h = start().await;
    let reserved = [
        "meshid",
        "meshid/ca",
        "meshid/agent/join_token/0123456789abcdef",
        "meshid/anything/else",
    ];
    let mut batch: Vec<pb::Entry> = reserved.iter().map(|p| entry(p, 1000)).collect();
    batch.push(entry("meshidfoo", 1000));
    let results = create(&mut h, batch).await;
    for (r, path) in results.iter().zip(reserved) {
        let e = item_error(r);
        assert_eq!(Code::from(e.code), Code::InvalidArgument, "{path}: {e:?}");
        assert!(
            e.message.starts_with(&format!(
                "spiffe_id spiffe://example.org/{path} is reserved"
            )),
            "{}",
            e.message
        );
    }
    // Whole segments only, and an agent parent is fine.
    let ok = created(&results[reserved.len()]).clone();
    assert_eq!(ok.parent_id, entry("x", 1).parent_id);
    assert_eq!(h.store.count_entries().await.unwrap(), 1);

    for path in reserved {
        let err = h
            .client
            .update_entry(pb::UpdateEntryRequest {
                entry: Some(pb::Entry {
                    id: ok.id.clone(),
                    ..entry(path, 1000)
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{path}: {err:?}");
        assert!(err.message().contains("reserved"), "{}", err.message());
    }
    let kept = h.store.get_entry(&ok.id).await.unwrap().unwrap();
    assert_eq!(kept.spiffe_id.as_str(), "spiffe://example.org/meshidfoo");

    for path in reserved {
        let err = h
            .client
            .create_join_token(pb::CreateJoinTokenRequest {
                tenant: String::new(),
                ttl_seconds: 0,
                spiffe_id: format!("spiffe://example.org/{path}"),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{path}: {err:?}");
        assert!(err.message().contains("reserved"), "{}", err.message());
    }
}
