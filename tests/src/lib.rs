//! Support for meshid's end-to-end tests: they run the real `meshid` binary
//! (and real peers: openssl, curl, Envoy, PostgreSQL) on loopback and Unix
//! sockets.
//!
//! - [`bin`]: find (or build once) the `meshid` binary.
//! - [`process`]: child processes that are killed when the guard drops.
//! - [`net`]: free ports, waiting for ports and sockets.
//! - [`eventually`]: poll a condition with a deadline instead of sleeping.
#![forbid(unsafe_code)]

pub mod bin;
pub mod eventually;
pub mod net;
pub mod process;

pub use bin::meshid_bin;
pub use eventually::{eventually, eventually_async};
pub use net::{free_port, wait_for_port, wait_for_socket};
pub use process::{Child, Cmd};

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("meshid-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"))
}
