//! Scenario (3) of live CA rotation: the operator suspects the active CA
//! key is compromised and taints it with `meshid ca rotation taint` while
//! continuous load runs over meshid proxy → meshid proxy and Envoy (SDS
//! from the agent) → meshid proxy. The CA prepares a successor at once and
//! activates it after the propagation delay; the agent re-issues every SVID
//! of the tainted key at once (SVIDs live 10 minutes, so nothing here is a
//! routine renewal). `revoke` refuses while SVIDs of the tainted key are
//! unexpired and, forced, drops its root from the bundle. No request fails,
//! nothing restarts, each served SVID has one issuance record.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use meshid_tests::certs::{authority_key_id, serial};
use meshid_tests::load::Load;
use meshid_tests::{Mesh, Traffic, eventually_every};

/// Long-lived SVIDs and root; a short propagation delay.
const CA_CONFIG: &str = "ca_ttl = \"1h\"\n\
    default_x509_ttl = \"10m\"\nmax_x509_ttl = \"10m\"\nagent_ttl = \"10m\"\n\
    [rotation]\npropagation_delay = \"10s\"\nreissue_spread = \"5m\"\n";
/// Bounds: activation after the delay, re-issue well inside the SVIDs' life.
const ACTIVATED: Duration = Duration::from_secs(45);
const REISSUED: Duration = Duration::from_secs(45);
const POLL: Duration = Duration::from_millis(500);

#[test]
fn a_tainted_active_key_is_replaced_and_every_svid_re_issued_under_load_without_a_failed_request() {
    let mut mesh = Mesh::builder().ca_config(CA_CONFIG).start();
    let mut traffic = Traffic::start(&mesh, "rotation scenario (3), Envoy part");
    let scratch = mesh.tmp.path().to_owned();
    let ca = &mesh.ca;
    let old_root = ca.bundle_certs();
    let tainted = ca.key_ids("x509", "active").pop().unwrap();
    for (who, leaf) in traffic.served_leaves() {
        assert_eq!(
            authority_key_id(&leaf, &scratch).as_ref(),
            Some(&tainted),
            "{who}"
        );
    }
    let load = Load::start(traffic.targets());
    load.wait_for_more(200, Duration::from_secs(60));

    let started = Instant::now();
    let out = ca.admin(&["ca", "rotation", "taint", &tainted]);
    assert!(out.contains("Tainted"), "{out}");
    let slots = ca.key_slots();
    assert!(
        slots
            .iter()
            .any(|s| s["key_id"] == tainted.as_str() && s["tainted"] == true),
        "show marks the key tainted: {slots:?}"
    );
    let table = ca.admin(&["ca", "rotation", "show"]);
    assert!(table.starts_with("SLOT "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains(&tainted) && l.contains(" active ") && l.ends_with(" yes")),
        "the table marks the active key tainted:\n{table}"
    );
    let successor = ca
        .key_ids("x509", "prepared")
        .pop()
        .unwrap_or_else(|| panic!("no successor prepared at once: {slots:?}"));
    eventually_every("the successor active", ACTIVATED, POLL, || {
        ca.key_ids("x509", "active")
            .contains(&successor)
            .then_some(())
    });
    eprintln!("successor active {:?} after the taint", started.elapsed());
    traffic.wait_served_under(std::slice::from_ref(&successor), &scratch, REISSUED);
    eprintln!(
        "every served SVID re-issued {:?} after the taint",
        started.elapsed()
    );

    let ca = &mesh.ca;
    let refused = ca.admin_refused(&["ca", "rotation", "revoke", &successor]);
    assert!(refused.contains("activate another key first"), "{refused}");
    let refused = ca.admin_refused(&["ca", "rotation", "revoke", &tainted]);
    assert!(refused.contains("unexpired SVIDs"), "{refused}");
    assert!(ca.bundle_certs().contains(&old_root[0]));
    ca.admin(&["ca", "rotation", "revoke", "--force", &tainted]);
    eventually_every(
        "the tainted root gone from the bundle",
        REISSUED,
        POLL,
        || (!ca.bundle_certs().contains(&old_root[0])).then_some(()),
    );
    load.wait_for_more(400, Duration::from_secs(60));
    traffic.finish(load, 50, &mut mesh.agent);
    let ca = &mesh.ca;
    assert!(
        !ca.key_slots()
            .iter()
            .any(|s| s["key_id"] == tainted.as_str()),
        "the revoked key left the journal"
    );
    for (who, leaf) in traffic.served_leaves() {
        assert_eq!(
            authority_key_id(&leaf, &scratch).as_ref(),
            Some(&successor),
            "{who}"
        );
        assert_eq!(
            ca.issuance_records(&serial(&leaf)),
            vec![successor.clone()],
            "{who}'s SVID has one issuance record, naming its key"
        );
    }
}
