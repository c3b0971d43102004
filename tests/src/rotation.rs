//! Scenario (1) of live CA rotation, for every TLS backend: a self-signed
//! CA rotates its root on its own schedule, compressed into real time
//! ([`ROOT_SCHEDULE`]), while [`Traffic`] keeps load on the mTLS paths.
//! `tests/rotation_root.rs` runs it on rustls, `tests/rotation_openssl.rs`
//! with the CA, the agent and every meshid proxy on OpenSSL.

use std::time::{Duration, Instant};

use crate::certs::{authority_key_id, serial, subject_key_id};
use crate::load::Load;
use crate::{Mesh, Traffic, eventually_every};

/// The CA's schedule: a root lives 2 minutes, its successor is prepared
/// after 30s and activated after 60s; retired roots stay 20s (the longest
/// SVID); agents re-issue within 5s of seeing a new active key.
pub const ROOT_SCHEDULE: &str = "ca_ttl = \"2m\"\n\
    default_x509_ttl = \"20s\"\nmax_x509_ttl = \"20s\"\nagent_ttl = \"20s\"\n\
    [rotation]\nprepare_at = 0.25\nactivate_at = 0.5\npropagation_delay = \"10s\"\n\
    reissue_spread = \"5s\"\n";
/// Bounds on each step (the schedule plus a loaded 2-core machine).
const PREPARED: Duration = Duration::from_secs(60);
const ACTIVATED: Duration = Duration::from_secs(60);
const REISSUED: Duration = Duration::from_secs(45);
const OLD_ROOT_GONE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(500);

/// Runs the scenario on `mesh` (its CA started with [`ROOT_SCHEDULE`]) and
/// `traffic` (started on it, every target answering): the prepared root is
/// in the bundle before any SVID it signs is served; once it is active
/// every proxy and Envoy serves an SVID it signed; the old root leaves the
/// bundle once its last SVID has expired. No request fails, nothing
/// restarts, each served SVID has one issuance record.
pub fn root_rotates_under_load(mesh: &mut Mesh, traffic: &mut Traffic) {
    let started = Instant::now();
    let scratch = mesh.tmp.path().to_owned();
    let ca = &mesh.ca;
    let old_root = ca.bundle_certs();
    assert_eq!(old_root.len(), 1, "one root at the start");
    let old_key = subject_key_id(&old_root[0], &scratch)
        .unwrap_or_else(|| panic!("the root has no subjectKeyIdentifier"));
    assert_eq!(ca.key_ids("x509", "active"), vec![old_key.clone()]);
    let load = Load::start(traffic.targets());

    // Prepared: published, not signing.
    let new_key = eventually_every("a prepared X.509 slot", PREPARED, POLL, || {
        ca.key_ids("x509", "prepared").pop()
    });
    let bundle = ca.bundle_certs();
    let new_root = bundle
        .iter()
        .find(|c| subject_key_id(c, &scratch).as_ref() == Some(&new_key))
        .unwrap_or_else(|| panic!("the prepared root {new_key} is not in the bundle"))
        .clone();
    assert!(
        bundle.contains(&old_root[0]),
        "the old root is still published"
    );
    for (who, leaf) in traffic.served_leaves() {
        assert_eq!(
            authority_key_id(&leaf, &scratch),
            Some(old_key.clone()),
            "{who} serves an SVID of the prepared key before it was activated"
        );
    }
    eprintln!("prepared {new_key} after {:?}", started.elapsed());

    // Activated: every served SVID is re-issued under it.
    eventually_every("the prepared X.509 key active", ACTIVATED, POLL, || {
        ca.key_ids("x509", "active")
            .contains(&new_key)
            .then_some(())
    });
    eprintln!("activated after {:?}", started.elapsed());
    traffic.wait_served_under(std::slice::from_ref(&new_key), &scratch, REISSUED);
    eprintln!("every served SVID re-issued after {:?}", started.elapsed());

    // The old root leaves the bundle once what it signed has expired.
    eventually_every(
        "the old root gone from the bundle",
        OLD_ROOT_GONE,
        POLL,
        || (!ca.bundle_certs().contains(&old_root[0])).then_some(()),
    );
    eprintln!("old root gone after {:?}", started.elapsed());
    load.wait_for_more(200, Duration::from_secs(30));
    traffic.finish(load, 50, &mut mesh.agent);
    let ca = &mesh.ca;
    let bundle = ca.bundle_certs();
    assert!(bundle.contains(&new_root), "the new root is published");
    assert!(!bundle.contains(&old_root[0]), "the old root is gone");
    assert!(
        !ca.key_slots()
            .iter()
            .any(|s| s["key_id"] == old_key.as_str()),
        "the old root's slot left the journal: {:?}",
        ca.key_slots()
    );
    for (who, leaf) in traffic.served_leaves() {
        let aki = authority_key_id(&leaf, &scratch)
            .unwrap_or_else(|| panic!("{who}'s SVID has no authorityKeyIdentifier"));
        assert_ne!(aki, old_key, "{who} still serves an SVID of the old root");
        assert_eq!(
            ca.issuance_records(&serial(&leaf)),
            vec![aki],
            "{who}'s SVID has one issuance record, naming its key"
        );
    }
}
