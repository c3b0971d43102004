//! Which client certificates count as an agent's: only its current SVID,
//! or the one it renewed from until it uses the renewed one. A certificate
//! the CA signed that merely carries an agent's ID is a stranger.

use super::*;
use meshid_ca::authority::X509SvidSpec;

/// Renews `agent` over a connection that presents its SVID `via`.
async fn renew(ca: &Ca, via: &Agent) -> Agent {
    let key = PrivateKey::generate_p256().unwrap();
    let svid = agent_client(ca, via)
        .await
        .renew_agent(RenewAgentRequest { csr: csr(&key) })
        .await
        .unwrap()
        .into_inner()
        .svid
        .unwrap();
    Agent::from_svid(key, svid)
}

async fn sync_code(ca: &Ca, who: &Agent) -> Option<Code> {
    agent_client(ca, who)
        .await
        .sync(SyncRequest::default())
        .await
        .err()
        .map(|e| e.code())
}

/// What an operator mistake before the reserved-ID rule (an entry whose
/// SPIFFE ID is an agent's) handed out: a valid, CA-signed workload SVID
/// carrying that agent's ID.
fn workload_svid_with_id(ca: &Ca, id: &SpiffeId) -> Agent {
    let key = PrivateKey::generate_p256().unwrap();
    let spki = key.public_key_der();
    let issued = ca
        .server
        .authority
        .load()
        .sign_x509_svid(
            &X509SvidSpec {
                spiffe_id: id,
                dns_names: &[],
                public_key_der: &spki,
                requested_ttl: Duration::ZERO,
                entry_ttl: Duration::ZERO,
            },
            SystemTime::now(),
        )
        .unwrap();
    Agent {
        id: id.clone(),
        key,
        chain: issued.chain,
    }
}

#[tokio::test]
async fn a_workload_svid_carrying_an_agent_id_is_refused_on_sync_sign_and_renew() {
    let ca = start().await;
    let (token, _) = new_token(&ca, None).await;
    let victim = attest(&ca, &token).await.unwrap();
    let web = entry(&ca, "web", &victim.id, &[]).await;
    let impostor = workload_svid_with_id(&ca, &victim.id);
    let bundles: BundleSet = [bundle(&ca)].into_iter().collect();
    let verified = verify_x509_svid(&impostor.chain, &bundles, SystemTime::now()).unwrap();
    assert_eq!(verified.spiffe_id, victim.id, "the chain itself is valid");

    let mut c = agent_client(&ca, &impostor).await;
    let sync = c.sync(SyncRequest::default()).await.unwrap_err();
    assert_eq!(sync.code(), Code::Unauthenticated, "{sync:?}");
    assert!(
        sync.message().contains("not the current SVID of agent"),
        "{}",
        sync.message()
    );
    let sign = c
        .sign_x509_svids(SignX509SvidsRequest {
            requests: vec![item(&web, csr(&PrivateKey::generate_p256().unwrap()))],
        })
        .await
        .unwrap_err();
    assert_eq!(sign.code(), Code::Unauthenticated, "{sign:?}");
    let jwt = c
        .mint_jwt_svids(MintJwtSvidsRequest { requests: vec![] })
        .await
        .unwrap_err();
    assert_eq!(jwt.code(), Code::Unauthenticated, "{jwt:?}");
    let renew = c
        .renew_agent(RenewAgentRequest {
            csr: csr(&PrivateKey::generate_p256().unwrap()),
        })
        .await
        .unwrap_err();
    assert_eq!(renew.code(), Code::Unauthenticated, "{renew:?}");

    // The victim is untouched: same serial, still served.
    assert_eq!(sync_code(&ca, &victim).await, None);
    let stored = ca
        .server
        .store
        .get_agent(&victim.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.previous_serial, None);

    // A workload SVID whose ID names no agent is refused just the same.
    let stranger: SpiffeId = format!("spiffe://{TD}/web").parse().unwrap();
    assert_eq!(
        sync_code(&ca, &workload_svid_with_id(&ca, &stranger)).await,
        Some(Code::Unauthenticated)
    );
    ca.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_previous_svid_works_until_the_renewed_one_is_used_and_never_after_two_renewals() {
    let ca = start().await;
    let (token, _) = new_token(&ca, None).await;
    let first = attest(&ca, &token).await.unwrap();

    // Just after a renewal the SVID it was made from still works (the
    // reply may have been lost), as does the new one.
    let second = renew(&ca, &first).await;
    assert_eq!(sync_code(&ca, &first).await, None);
    assert_eq!(sync_code(&ca, &second).await, None);
    // Once the agent has used the renewed SVID the old one is retired.
    let retired = agent_client(&ca, &first)
        .await
        .sync(SyncRequest::default())
        .await
        .unwrap_err();
    assert_eq!(retired.code(), Code::Unauthenticated, "{retired:?}");

    // Two renewals on, the first SVID is refused even if the second was
    // never used in between, and the second only while the third is unused.
    let third = renew(&ca, &second).await;
    let fourth = renew(&ca, &third).await;
    assert_eq!(sync_code(&ca, &first).await, Some(Code::Unauthenticated));
    assert_eq!(sync_code(&ca, &second).await, Some(Code::Unauthenticated));
    assert_eq!(sync_code(&ca, &third).await, None);
    assert_eq!(sync_code(&ca, &fourth).await, None);
    assert_eq!(sync_code(&ca, &third).await, Some(Code::Unauthenticated));
    let stale = agent_client(&ca, &first)
        .await
        .renew_agent(RenewAgentRequest {
            csr: csr(&PrivateKey::generate_p256().unwrap()),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Unauthenticated, "{stale:?}");

    // A ban binds the current and the previous SVID alike.
    let fifth = renew(&ca, &fourth).await;
    ca.server
        .store
        .set_agent_banned(&fifth.id, true)
        .await
        .unwrap();
    assert_eq!(sync_code(&ca, &fourth).await, Some(Code::PermissionDenied));
    assert_eq!(sync_code(&ca, &fifth).await, Some(Code::PermissionDenied));
    ca.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_entry_stored_with_a_reserved_id_is_never_signed() {
    let ca = start().await;
    let (t1, _) = new_token(&ca, None).await;
    let (t2, _) = new_token(&ca, None).await;
    let mine = attest(&ca, &t1).await.unwrap();
    let other = attest(&ca, &t2).await.unwrap();
    // Written straight to the store, as an older CA version allowed.
    let e = NewEntry::new(
        other.id.clone(),
        mine.id.clone(),
        vec![Selector::parse("unix:uid:1000").unwrap()],
    );
    let stolen = ca.server.store.create_entry(e).await.unwrap().id;
    let mut c = agent_client(&ca, &mine).await;
    let sync = c.sync(SyncRequest::default()).await.unwrap().into_inner();
    assert!(sync.entries.is_empty(), "{:?}", sync.entries);
    let resp = c
        .sign_x509_svids(SignX509SvidsRequest {
            requests: vec![item(&stolen, csr(&PrivateKey::generate_p256().unwrap()))],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_code(&resp.results[0]), Some(Code::PermissionDenied));
    ca.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_node_alias_naming_another_agent_serves_none_of_its_entries() {
    let ca = start().await;
    let (t1, victim_id) = new_token(&ca, None).await;
    let victim = attest(&ca, &t1).await.unwrap();
    assert_eq!(victim.id, victim_id);
    let _secret = entry(&ca, "secret", &victim.id, &[]).await;
    // A token stored with another agent's ID as alias (an older CA
    // version let the admin API do this).
    let (t2, _) = new_token(&ca, Some(victim.id.clone())).await;
    let thief = attest(&ca, &t2).await.unwrap();
    let sync = agent_client(&ca, &thief)
        .await
        .sync(SyncRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(sync.entries.is_empty(), "{:?}", sync.entries);
    ca.server.shutdown().await.unwrap();
}
