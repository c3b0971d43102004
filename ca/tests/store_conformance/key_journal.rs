//! The CA key journal, its leases and the issuance counts per key: the
//! part of the conformance suite every backend must pass for #12.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_ca::store::{
    IssuanceRecord, KeyKind, KeySlot, Lease, SlotState, Store, StoreError, StoreUrl,
};
use meshid_runtime::clock::{Clock, ManualClock};
use sqlx::Connection;

use super::{at, id};

/// The lease the rotation engine writes under.
const ROTATION: &str = "rotation";
/// The lease TTL the tests take.
const TTL: Duration = Duration::from_secs(30);
/// Where the journal tests start the store's clock.
const T0: u64 = 1_800_000_000;

/// A slot of `replica` with every field set to something distinct.
fn slot(replica: &str, kind: KeyKind, generation: u32, state: SlotState) -> KeySlot {
    let g = u64::from(generation);
    KeySlot {
        id: KeySlot::slot_id(replica, kind, generation),
        replica: replica.into(),
        kind,
        generation,
        state,
        key_id: format!("{replica}{kind}{generation}"),
        key_slot: format!("{kind}-{generation}"),
        key_ref: format!("/var/lib/meshid/keys/{kind}-{generation}.pem"),
        public_pem: format!("-----BEGIN CERTIFICATE-----\n{replica}{g}\n"),
        roots_pem: match kind {
            KeyKind::X509 => format!("-----BEGIN CERTIFICATE-----\nroot{g}\n"),
            KeyKind::Jwt => String::new(),
        },
        not_before: at(T0 + g),
        not_after: at(T0 + 86_400 + g),
        prepared_at: at(T0 + 10 + g),
        activated_at: (state != SlotState::Prepared).then(|| at(T0 + 20 + g)),
        retired_at: (state == SlotState::Old).then(|| at(T0 + 30 + g)),
        publish_until: (state == SlotState::Old).then(|| at(T0 + 40 + g)),
        tainted: generation.is_multiple_of(2),
        updated_at: at(T0 + 50 + g),
    }
}

async fn take(s: &dyn Store, holder: &str) -> Lease {
    s.acquire_lease(ROTATION, holder, TTL)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{holder} could not take the free lease"))
}

fn lease_lost(r: Result<(), StoreError>) -> bool {
    matches!(r, Err(StoreError::LeaseLost { name }) if name == ROTATION)
}

/// Slots come back with every field as written, in ID order; a put
/// replaces; delete removes; bad slots are refused.
pub(super) async fn key_slots_round_trip_in_id_order(s: Arc<dyn Store>, clock: ManualClock) {
    clock.set(at(T0));
    assert!(s.list_key_slots().await.unwrap().is_empty());
    let lease = take(s.as_ref(), "ca-b").await;
    let b_jwt = slot("ca-b", KeyKind::Jwt, 2, SlotState::Prepared);
    let b_x509 = slot("ca-b", KeyKind::X509, 1, SlotState::Active);
    let a_old = slot("ca-a", KeyKind::X509, 1, SlotState::Old);
    // Replicas sharing one intermediate have slots with the same key ID.
    let a_new = KeySlot {
        key_id: b_x509.key_id.clone(),
        ..slot("ca-a", KeyKind::X509, 2, SlotState::Active)
    };
    for sl in [&b_jwt, &b_x509, &a_new, &a_old] {
        s.put_key_slot(sl, &lease).await.unwrap();
    }
    assert_eq!(
        s.list_key_slots().await.unwrap(),
        vec![a_old.clone(), a_new.clone(), b_jwt.clone(), b_x509.clone()]
    );

    // Replacing a slot changes it in place.
    let activated = KeySlot {
        state: SlotState::Active,
        activated_at: Some(at(T0 + 99)),
        tainted: true,
        updated_at: at(T0 + 99),
        ..b_jwt.clone()
    };
    s.put_key_slot(&activated, &lease).await.unwrap();
    s.delete_key_slot(&a_old.id, &lease).await.unwrap();
    assert_eq!(
        s.list_key_slots().await.unwrap(),
        vec![a_new, activated, b_x509]
    );
    let gone = s.delete_key_slot(&a_old.id, &lease).await;
    assert!(
        matches!(&gone, Err(StoreError::NotFound { key, .. }) if *key == a_old.id),
        "{gone:?}"
    );

    // Refused before anything is written.
    let good = slot("ca-c", KeyKind::X509, 1, SlotState::Active);
    let bad = [
        KeySlot {
            id: "ca-c/x509/7".into(),
            ..good.clone()
        },
        KeySlot {
            id: KeySlot::slot_id("ca-c", KeyKind::X509, 0),
            generation: 0,
            ..good.clone()
        },
        KeySlot {
            key_id: String::new(),
            ..good.clone()
        },
        KeySlot {
            activated_at: None,
            ..good.clone()
        },
        KeySlot {
            state: SlotState::Old,
            ..good.clone()
        },
        KeySlot {
            state: SlotState::Prepared,
            ..good.clone()
        },
        KeySlot {
            public_pem: "x".repeat(300 * 1024),
            ..good.clone()
        },
    ];
    for b in &bad {
        let res = s.put_key_slot(b, &lease).await;
        assert!(matches!(res, Err(StoreError::Invalid(_))), "{b:?}: {res:?}");
    }
    assert_eq!(s.list_key_slots().await.unwrap().len(), 3);
}

/// Writes under a lease that expired, or that another holder took since,
/// are refused with `LeaseLost` and change nothing.
pub(super) async fn key_slot_writes_are_fenced_by_the_lease(s: Arc<dyn Store>, clock: ManualClock) {
    clock.set(at(T0));
    let a = take(s.as_ref(), "ca-a").await;
    assert_eq!((a.name.as_str(), a.holder.as_str()), (ROTATION, "ca-a"));
    assert_eq!(a.expires_at, at(T0) + TTL);
    let first = slot("ca-a", KeyKind::X509, 1, SlotState::Active);
    s.put_key_slot(&first, &a).await.unwrap();

    // The lease lapses: the holder's writes are refused.
    clock.advance(TTL);
    let second = slot("ca-a", KeyKind::X509, 2, SlotState::Prepared);
    assert!(lease_lost(s.put_key_slot(&second, &a).await));
    assert!(lease_lost(s.delete_key_slot(&first.id, &a).await));

    // Another replica takes it: a higher token, and the old holder's
    // writes stay refused even though it never noticed.
    let b = take(s.as_ref(), "ca-b").await;
    assert_eq!(b.token, a.token + 1);
    assert!(
        s.acquire_lease(ROTATION, "ca-a", TTL)
            .await
            .unwrap()
            .is_none()
    );
    assert!(lease_lost(s.put_key_slot(&second, &a).await));
    assert!(lease_lost(s.delete_key_slot(&first.id, &a).await));
    // A lease of the right holder with a stale token is not the lease.
    let forged = Lease {
        holder: "ca-b".into(),
        token: a.token,
        ..b.clone()
    };
    assert!(lease_lost(s.put_key_slot(&second, &forged).await));
    // Nor is a lease of another name.
    let other = Lease {
        name: "other".into(),
        ..b.clone()
    };
    let res = s.put_key_slot(&second, &other).await;
    assert!(
        matches!(&res, Err(StoreError::LeaseLost { name }) if name == "other"),
        "{res:?}"
    );
    assert_eq!(s.list_key_slots().await.unwrap(), vec![first.clone()]);

    // The holder's writes go through.
    s.put_key_slot(&second, &b).await.unwrap();
    s.delete_key_slot(&first.id, &b).await.unwrap();
    assert_eq!(s.list_key_slots().await.unwrap(), vec![second]);
}

/// Re-acquiring renews with the same token; release frees the lease at
/// once for the next holder, whose token is higher.
pub(super) async fn leases_renew_release_and_count_hand_overs(
    s: Arc<dyn Store>,
    clock: ManualClock,
) {
    clock.set(at(T0));
    assert_eq!(s.get_lease(ROTATION).await.unwrap(), None, "never taken");
    let a = take(s.as_ref(), "ca-a").await;
    clock.advance(Duration::from_secs(20));
    let renewed = take(s.as_ref(), "ca-a").await;
    assert_eq!(renewed.token, a.token, "renewal keeps the token");
    assert_eq!(renewed.expires_at, at(T0 + 20) + TTL);
    assert_eq!(s.get_lease(ROTATION).await.unwrap(), Some(renewed.clone()));
    // Still within the renewed term (past the first one): held.
    clock.advance(Duration::from_secs(20));
    assert!(
        s.acquire_lease(ROTATION, "ca-b", TTL)
            .await
            .unwrap()
            .is_none()
    );
    s.put_key_slot(&slot("ca-a", KeyKind::Jwt, 1, SlotState::Active), &a)
        .await
        .unwrap();

    // Releasing with a stale token or as someone else does nothing.
    for not_it in [
        Lease {
            token: a.token + 5,
            ..a.clone()
        },
        Lease {
            holder: "ca-b".into(),
            ..a.clone()
        },
    ] {
        s.release_lease(&not_it).await.unwrap();
        assert!(
            s.acquire_lease(ROTATION, "ca-b", TTL)
                .await
                .unwrap()
                .is_none()
        );
    }
    s.release_lease(&a).await.unwrap();
    let recorded = s.get_lease(ROTATION).await.unwrap().unwrap();
    assert_eq!(
        (recorded.holder.as_str(), recorded.token),
        ("ca-a", a.token)
    );
    assert!(
        recorded.expires_at < clock.now(),
        "a released lease has lapsed"
    );
    let released = s
        .put_key_slot(&slot("ca-a", KeyKind::Jwt, 2, SlotState::Prepared), &a)
        .await;
    assert!(lease_lost(released), "a released lease fences nothing");
    let b = take(s.as_ref(), "ca-b").await;
    assert_eq!(b.token, a.token + 1);
    s.release_lease(&b).await.unwrap();
    let back = take(s.as_ref(), "ca-a").await;
    assert_eq!(back.token, a.token + 2, "taking it back is a hand-over too");
    // Re-taking one's own lease after it lapsed is a new term.
    clock.advance(TTL);
    let again = take(s.as_ref(), "ca-a").await;
    assert_eq!(again.token, back.token + 1);
    assert!(lease_lost(
        s.put_key_slot(&slot("ca-a", KeyKind::Jwt, 3, SlotState::Prepared), &back)
            .await
    ));
    // Leases are independent by name.
    let other = s
        .acquire_lease("other", "ca-b", TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.token, 1);

    for (name, holder, ttl) in [
        ("", "ca-a", TTL),
        (ROTATION, "", TTL),
        (ROTATION, "ca-a", Duration::ZERO),
        (ROTATION, "ca-a", Duration::from_secs(365 * 86_400)),
    ] {
        let res = s.acquire_lease(name, holder, ttl).await;
        assert!(matches!(res, Err(StoreError::Invalid(_))), "{res:?}");
    }
}

/// Two replicas racing for the lease: exactly one holds it each time, on
/// a free lease and on one that just expired (bounded rounds).
pub(super) async fn racing_acquirers_never_both_hold_the_lease(
    s: Arc<dyn Store>,
    clock: ManualClock,
) {
    const ROUNDS: usize = 40;
    const RACERS: usize = 4;
    clock.set(at(T0));
    let mut last_token = 0;
    for round in 0..ROUNDS {
        let start = Arc::new(tokio::sync::Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|r| {
                let (s, start) = (Arc::clone(&s), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    s.acquire_lease(ROTATION, &format!("ca-{r}"), TTL).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for r in racers {
            if let Some(lease) = r.await.unwrap().unwrap() {
                winners.push(lease);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(winners[0].token, last_token + 1, "round {round}");
        last_token = winners[0].token;
        // The winner's fenced write works; then its term runs out.
        let w = &winners[0];
        let generation = u32::try_from(round + 1).unwrap();
        s.put_key_slot(
            &slot(&w.holder, KeyKind::X509, generation, SlotState::Active),
            w,
        )
        .await
        .unwrap();
        clock.advance(TTL);
    }
    assert_eq!(s.list_key_slots().await.unwrap().len(), ROUNDS);
}

/// A holder writing while its lease lapses and another replica takes it:
/// once the taker holds the lease, no write of the old holder lands any
/// more (on PostgreSQL the take-over waits for fenced writes in flight).
pub(super) async fn no_write_lands_after_the_lease_changed_hands(
    s: Arc<dyn Store>,
    clock: ManualClock,
) {
    const ROUNDS: usize = 20;
    const MAX_WRITES: u32 = 500;
    clock.set(at(T0));
    for round in 0..ROUNDS {
        let name = format!("race-{round}");
        let replica = format!("ca-old-{round}");
        let old = s
            .acquire_lease(&name, &replica, TTL)
            .await
            .unwrap()
            .unwrap();
        let writer = {
            let (s, replica) = (Arc::clone(&s), replica.clone());
            tokio::spawn(async move {
                for generation in 1..=MAX_WRITES {
                    let sl = slot(&replica, KeyKind::X509, generation, SlotState::Active);
                    match s.put_key_slot(&sl, &old).await {
                        Ok(()) => tokio::task::yield_now().await,
                        Err(StoreError::LeaseLost { .. }) => return generation - 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                MAX_WRITES
            })
        };
        tokio::time::sleep(Duration::from_millis(2)).await;
        clock.advance(TTL);
        let new = s.acquire_lease(&name, "ca-new", TTL).await.unwrap();
        assert!(new.is_some(), "round {round}: the lapsed lease is free");
        let mine = |all: Vec<KeySlot>| -> Vec<String> {
            all.into_iter()
                .filter(|k| k.replica == replica)
                .map(|k| k.id)
                .collect()
        };
        let seen = mine(s.list_key_slots().await.unwrap());
        let written = writer.await.unwrap();
        assert!(
            written < MAX_WRITES,
            "round {round}: the old holder was stopped"
        );
        assert_eq!(
            mine(s.list_key_slots().await.unwrap()),
            seen,
            "round {round}: a write of the old holder landed after the take-over"
        );
        assert_eq!(
            seen.len(),
            usize::try_from(written).unwrap(),
            "round {round}"
        );
    }
}

fn issued(serial: &str, key: Option<&str>, not_after: SystemTime) -> IssuanceRecord {
    IssuanceRecord {
        serial: serial.into(),
        spiffe_id: id("/w"),
        agent_id: Some(id("/node/a")),
        entry_id: None,
        not_after,
        issued_at: at(T0),
        ca_key_id: key.map(str::to_owned),
        tenant: String::new(),
    }
}

/// Issuance records carry the signing key's ID (or none); the live count
/// per key counts only records that have not expired by the store's clock.
pub(super) async fn live_issuances_are_counted_per_key(s: Arc<dyn Store>, clock: ManualClock) {
    clock.set(at(T0));
    let soon = at(T0 + 60);
    let later = at(T0 + 3_600);
    let records = [
        issued("01", Some("k1"), soon),
        issued("02", Some("k1"), later),
        issued("03", Some("k1"), at(T0)),
        issued("04", Some("k2"), soon),
        issued("05", None, later),
    ];
    s.record_issuances(&records).await.unwrap();
    for r in &records {
        assert_eq!(s.get_issuance(&r.serial).await.unwrap().as_ref(), Some(r));
    }
    let count = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    };
    assert_eq!(
        s.live_issuances_by_key().await.unwrap(),
        count(&[("k1", 2), ("k2", 1)])
    );
    clock.set(soon);
    assert_eq!(
        s.live_issuances_by_key().await.unwrap(),
        count(&[("k1", 1)])
    );
    clock.set(later);
    assert!(s.live_issuances_by_key().await.unwrap().is_empty());

    let bad = issued("06", Some(""), later);
    assert!(matches!(
        s.record_issuances(&[bad]).await,
        Err(StoreError::Invalid(_))
    ));
}

/// A journal row with an unknown kind or state, or a generation out of
/// range, is reported naming the row (SQLite: its CHECK constraints can be
/// switched off to write one).
#[tokio::test]
async fn corrupt_key_slots_are_reported_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ca.db").display());
    let s = meshid_ca::store::open(&StoreUrl::parse(&url).unwrap())
        .await
        .unwrap();
    let lease = s
        .acquire_lease(ROTATION, "ca-a", TTL)
        .await
        .unwrap()
        .unwrap();
    let good = slot("ca-a", KeyKind::X509, 1, SlotState::Active);
    s.put_key_slot(&good, &lease).await.unwrap();
    let mut raw = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = ON")
        .execute(&mut raw)
        .await
        .unwrap();
    for (column, value, reason) in [
        ("kind", "rsa", "kind"),
        ("state", "retired", "state"),
        ("generation", "4294967296", "generation"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE ca_key_slots SET {column} = '{value}'"
        )))
        .execute(&mut raw)
        .await
        .unwrap();
        let err = s.list_key_slots().await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("ca_key_slots") && msg.contains(&good.id) && msg.contains(reason),
            "{msg}"
        );
        sqlx::query("DELETE FROM ca_key_slots")
            .execute(&mut raw)
            .await
            .unwrap();
        s.put_key_slot(&good, &lease).await.unwrap();
    }
}
