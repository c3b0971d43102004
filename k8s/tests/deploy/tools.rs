//! The outside tools the deploy tests run, as scripts/test installs them:
//! every `kubectl` of `$MESHID_TEST_KUBECTL`, the venv Python with
//! kubernetes-validate (`$MESHID_TEST_PYTHON`), podman. A missing tool
//! fails the test under CI (`$CI` set) and skips it loudly elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `None` after a loud notice outside CI; a panic under CI.
fn missing<T>(test: &str, what: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("{what}; scripts/test installs it");
    }
    eprintln!("\n\n!!! SKIPPING {test}: {what}. Run scripts/test once to install it !!!\n\n");
    None
}

/// Every kubectl to build the overlays with: `$MESHID_TEST_KUBECTL`
/// (colon-separated), else `kubectl` from PATH and the Debian 1.20 one
/// unpacked into target/tools/kubernetes-client, those that exist.
pub fn kubectls(test: &str) -> Option<Vec<PathBuf>> {
    let listed: Vec<PathBuf> = match std::env::var_os("MESHID_TEST_KUBECTL") {
        Some(v) => std::env::split_paths(&v).collect(),
        None => {
            let old = root().join("target/tools/kubernetes-client/usr/bin/kubectl");
            let on_path = Command::new("kubectl")
                .args(["version", "--client"])
                .output()
                .is_ok_and(|o| o.status.success());
            let mut all = Vec::new();
            if on_path {
                all.push(PathBuf::from("kubectl"));
            }
            if old.exists() {
                all.push(old);
            }
            all
        }
    };
    if listed.is_empty() {
        return missing(
            test,
            "no kubectl found (MESHID_TEST_KUBECTL unset, none on PATH)",
        );
    }
    Some(listed)
}

/// The Python that has kubernetes-validate: `$MESHID_TEST_PYTHON`, else
/// target/test-venv/bin/python.
pub fn python(test: &str) -> Option<PathBuf> {
    let python = std::env::var_os("MESHID_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/test-venv/bin/python"));
    let has_it = Command::new(&python)
        .args(["-c", "import kubernetes_validate"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_it {
        return missing(
            test,
            &format!("{} cannot import kubernetes_validate", python.display()),
        );
    }
    Some(python)
}

/// `podman`, if installed.
pub fn podman(test: &str) -> Option<PathBuf> {
    let ok = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return missing(test, "podman is not installed");
    }
    Some(PathBuf::from("podman"))
}

/// Runs `cmd`; its stdout, or a panic naming it with its stderr.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{cmd:?}: output not UTF-8: {e}"))
}
