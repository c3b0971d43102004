//! Scenario (4) of live CA rotation: the JWT-SVID signing key is rotated
//! by hand (`meshid ca rotation prepare|activate --kind jwt`) while
//! JWT-SVIDs fetched from the agent's Workload API are validated without a
//! pause, against a JWT bundle cached from the agent for up to 2s (as a
//! relying party would) and by the agent's ValidateJWTSVID, and while
//! continuous mTLS load runs over meshid proxy → meshid proxy and Envoy
//! (SDS from the agent) → meshid proxy. Activation is refused until the
//! prepared key has propagated; tokens of both keys validate; the old key
//! leaves the bundle once its last JWT-SVID has expired. No check and no
//! request fails, nothing restarts.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use meshid_tests::jwt_load::JwtLoad;
use meshid_tests::load::Load;
use meshid_tests::{Mesh, TestCa, Traffic, eventually_every};

/// JWT-SVIDs live 30s; a prepared key waits 10s before it may sign.
const CA_CONFIG: &str = "ca_ttl = \"2h\"\n\
    default_jwt_ttl = \"30s\"\nmax_jwt_ttl = \"30s\"\n\
    [rotation]\npropagation_delay = \"10s\"\n";
const AUDIENCE: &str = "rotation-test";
/// Bounds on each step (the delays above plus a loaded 2-core machine).
const PROPAGATED: Duration = Duration::from_secs(30);
const NEW_KEY_SIGNS: Duration = Duration::from_secs(60);
const OLD_KEY_GONE: Duration = Duration::from_secs(75);
const POLL: Duration = Duration::from_millis(500);

/// The `kid`s of the JWT keys in the CA's bundle.
fn bundle_jwt_keys(ca: &TestCa) -> Vec<String> {
    let v = ca.admin_json(&["bundle", "show"]);
    v["jwt_key_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no jwt_key_ids in:\n{v}"))
        .iter()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_jwt_key_is_rotated_while_jwt_svids_are_validated_without_a_failure() {
    let mut mesh = Mesh::builder().ca_config(CA_CONFIG).start();
    let mut traffic = Traffic::start(&mesh, "rotation scenario (4), Envoy part");
    let ca = &mesh.ca;
    let old_key = ca.key_ids("jwt", "active").pop().unwrap();
    assert_eq!(bundle_jwt_keys(ca), vec![old_key.clone()]);
    let load = Load::start(traffic.targets());
    let jwts = JwtLoad::start(mesh.workload_socket(), AUDIENCE);
    eventually_every("JWT-SVIDs of the first key", PROPAGATED, POLL, || {
        jwts.tally().ok_by_key.contains_key(&old_key).then_some(())
    });

    let started = Instant::now();
    let prepared = ca.admin_json(&["ca", "rotation", "prepare", "--kind", "jwt"]);
    let new_key = prepared["key_id"].as_str().unwrap().to_owned();
    assert_eq!(prepared["state"], "prepared", "{prepared}");
    let refused = ca.admin_refused(&["ca", "rotation", "activate", "--kind", "jwt"]);
    assert!(refused.contains("propagation delay"), "{refused}");
    assert!(bundle_jwt_keys(ca).contains(&new_key), "published at once");
    eventually_every(
        "activation once the prepared key has propagated",
        PROPAGATED,
        Duration::from_secs(1),
        || {
            let out = meshid_tests::Cmd::meshid()
                .args([
                    "ca",
                    "rotation",
                    "activate",
                    "--kind",
                    "jwt",
                    "--admin-socket",
                ])
                .args([&ca.admin_socket])
                .output();
            out.status.success().then_some(())
        },
    );
    eprintln!("new JWT key active {:?} after prepare", started.elapsed());
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "activated before the propagation delay"
    );
    eventually_every(
        "JWT-SVIDs signed by the new key",
        NEW_KEY_SIGNS,
        POLL,
        || jwts.tally().ok_by_key.contains_key(&new_key).then_some(()),
    );
    eventually_every(
        "the old JWT key gone from the bundle",
        OLD_KEY_GONE,
        POLL,
        || (!bundle_jwt_keys(ca).contains(&old_key)).then_some(()),
    );
    eprintln!("old JWT key gone {:?} after prepare", started.elapsed());
    load.wait_for_more(200, Duration::from_secs(30));
    let checks = jwts.stop();
    traffic.finish(load, 50, &mut mesh.agent);
    assert_eq!(checks.failed(), 0, "JWT-SVID checks failed:\n{checks}");
    let ca = &mesh.ca;
    assert_eq!(bundle_jwt_keys(ca), vec![new_key.clone()]);
    assert_eq!(ca.key_ids("jwt", "active"), vec![new_key]);
    assert!(
        !ca.key_slots()
            .iter()
            .any(|s| s["key_id"] == old_key.as_str()),
        "the old JWT key left the journal"
    );
}
