//! Locating the `meshid` binary under test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Path of the `meshid` binary: `$MESHID_BIN` if set, else
/// `target/<profile>/meshid` next to this test executable, built once with
/// `cargo build -p meshid` if it is missing or older than the sources.
pub fn meshid_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("MESHID_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<test-exe> -> target/<profile>/meshid
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .unwrap_or_else(|| panic!("unexpected test exe location {}", exe.display()))
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "meshid", "--bin", "meshid"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo build: {e}"));
        assert!(status.success(), "cargo build -p meshid failed");
        let bin = profile_dir.join("meshid");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// Panics, saying how to build one, unless the binary under test has the
/// OpenSSL TLS backend compiled in (`meshid version` lists `openssl`).
pub fn require_openssl_backend() {
    let bin = meshid_bin();
    let out = Command::new(&bin)
        .arg("version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} version: {e}", bin.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(", openssl ("),
        "{} has no OpenSSL backend (`meshid version` said {text:?}): build it with \
         `cargo build -p meshid --bin meshid --features openssl` and export \
         MESHID_BIN=$PWD/target/debug/meshid",
        bin.display()
    );
}
