//! Scenario (1) of live CA rotation on the OpenSSL backend: the CA (node
//! API and signing), the agent's CA client and both meshid proxies run
//! with `tls_backend = "openssl"` (Envoy stays Envoy), and the self-signed
//! root rotates on its compressed schedule under continuous load, pooled
//! and one TLS handshake per request. The same steps as rotation_root
//! (`meshid_tests::rotation`): no request fails, nothing restarts, every
//! OpenSSL listener serves the new root's SVIDs without a restart and the
//! pooled OpenSSL connections survive the bundle swap. The binary under
//! test must be built with `--features openssl`.

use meshid_identity::tls::TlsBackend;
use meshid_tests::bin::require_openssl_backend;
use meshid_tests::rotation::{ROOT_SCHEDULE, root_rotates_under_load};
use meshid_tests::{Mesh, Traffic};

#[test]
fn the_root_rotates_under_continuous_load_with_everything_on_openssl_without_a_failed_request() {
    require_openssl_backend();
    let mut mesh = Mesh::builder()
        .tls_backend(TlsBackend::Openssl)
        .ca_config(ROOT_SCHEDULE)
        .start();
    let mut traffic = Traffic::start_on(
        &mesh,
        "rotation scenario (1) on OpenSSL, Envoy part",
        TlsBackend::Openssl,
    );
    root_rotates_under_load(&mut mesh, &mut traffic);
}
