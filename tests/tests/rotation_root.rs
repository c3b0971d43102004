//! Scenario (1) of live CA rotation: a self-signed CA rotates its root on
//! its own schedule, compressed into real time (`ca_ttl = "2m"`, prepare
//! at 1/4 and activate at 1/2 of the root's life, SVIDs of 20s), while
//! continuous load runs over meshid proxy → meshid proxy and Envoy (SDS
//! from the agent) → meshid proxy, pooled and one TLS handshake per
//! request. The prepared root is in the bundle before any SVID it signs is
//! served; once it is active every proxy and Envoy serves an SVID it
//! signed; the old root leaves the bundle once its last SVID has expired.
//! No request fails, nothing restarts, each served SVID has one issuance
//! record. (The steps are in `meshid_tests::rotation`, shared with
//! rotation_openssl; the full schedule on an injected clock is in
//! ca/tests.)

use meshid_tests::rotation::{ROOT_SCHEDULE, root_rotates_under_load};
use meshid_tests::{Mesh, Traffic};

#[test]
fn the_self_signed_root_rotates_on_schedule_under_continuous_mtls_load_without_a_failed_request() {
    let mut mesh = Mesh::builder().ca_config(ROOT_SCHEDULE).start();
    let mut traffic = Traffic::start(&mesh, "rotation scenario (1), Envoy part");
    root_rotates_under_load(&mut mesh, &mut traffic);
}
