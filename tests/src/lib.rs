//! Support for meshid's tests: end-to-end tests run the real `meshid`
//! binary (and real peers: openssl, curl, Envoy, PostgreSQL) on loopback
//! and Unix sockets; the crates' own integration tests use the same
//! fixtures and waits.
//!
//! - [`bin`]: find (or build once) the `meshid` binary; require its
//!   OpenSSL backend.
//! - [`process`]: child processes that are killed when the guard drops.
//! - [`net`]: free ports, waiting for ports and sockets, a TCP echo server.
//! - [`eventually`](mod@eventually): poll a condition with a deadline instead of sleeping.
//! - [`lines`]: wait for a line in a log file.
//! - [`http`](mod@http): a recording HTTP/1.1 backend, a one-request client
//!   and a keep-alive client.
//! - [`load`]: continuous bounded HTTP load, failures counted by reason.
//! - [`proxy`]: [`TestProxy`], `meshid proxy run` on the Workload API
//!   (HTTP and TCP listeners, extra config such as `tls_backend`).
//! - [`traffic`]: [`Traffic`], meshid proxy → meshid proxy and Envoy →
//!   meshid proxy paths, pooled and one handshake per request, on either
//!   TLS backend.
//! - [`rotation`]: the root-rotation-under-load scenario, shared by the
//!   rustls and OpenSSL runs.
//! - [`certs`]: the chain a TLS server presents, AKI and serial (openssl).
//! - [`workload_client`]: JWT-SVIDs and JWT bundles from a real agent.
//! - [`jwt_load`]: continuous JWT-SVID fetch and validation.
//! - [`kube`](mod@kube): [`FakeApiServer`](kube::FakeApiServer), a Kubernetes API server
//!   on loopback for kube-rs clients (controller, webhook tests), with
//!   TokenReview, service-account tokens ([`SaIssuer`](kube::SaIssuer))
//!   and OIDC discovery ([`OidcIssuer`](kube::OidcIssuer)).
//! - [`kubelet`]: [`FakeKubelet`](kubelet::FakeKubelet), the kubelet's
//!   `/pods` over HTTPS for the k8s workload attestor.
//! - [`cgroup`]: real pod cgroups ([`PodCgroup`](cgroup::PodCgroup)) to
//!   move test processes into.
//! - [`ca`]: [`TestCa`], `meshid ca serve` with its operator steps.
//! - [`agent`]: [`TestAgent`], `meshid agent run` against a [`TestCa`].
//! - [`mesh`]: [`Mesh`], a CA and an agent serving this process an SVID.
//! - [`node`]: a node API client for the CA, pinned by its bundle.
//! - [`workload_api`]: [`FakeWorkloadApi`], a Workload API server the test
//!   feeds.
//! - [`envoy`]: [`Envoy`] from `$ENVOY_BIN` and the example config.
//! - [`pki`]: [`Pki`], an enterprise PKI made with the `openssl` CLI.
//! - [`postgres`]: a fresh PostgreSQL database per test (psql).
//! - [`softhsm`]: SoftHSM2 token directories for the PKCS#11 tests.
#![forbid(unsafe_code)]

pub mod agent;
pub mod bin;
pub mod ca;
pub mod certs;
pub mod cgroup;
pub mod envoy;
pub mod eventually;
pub mod http;
pub mod jwt_load;
pub mod kube;
pub mod kubelet;
pub mod lines;
pub mod load;
pub mod mesh;
pub mod net;
pub mod node;
pub mod pki;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod rotation;
pub mod softhsm;
pub mod traffic;
pub mod workload_api;
pub mod workload_client;

pub use agent::{TestAgent, TestAgentBuilder};
pub use bin::meshid_bin;
pub use ca::{JoinToken, Start, TestCa, TestCaBuilder};
pub use envoy::Envoy;
pub use eventually::{eventually, eventually_async, eventually_every};
pub use lines::wait_for_line;
pub use mesh::{Mesh, MeshBuilder, current_uid};
pub use net::{free_port, wait_for_port, wait_for_socket};
pub use node::{ClientSvid, node_client};
pub use pki::{Alg, Pki};
pub use process::{Child, Cmd};
pub use proxy::TestProxy;
pub use traffic::Traffic;
pub use workload_api::FakeWorkloadApi;

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("meshid-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"))
}
