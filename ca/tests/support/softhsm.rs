//! SoftHSM2 tokens for the PKCS#11 tests. SoftHSM reads `SOFTHSM2_CONF`
//! once, when the module is initialised, and a module is initialised once
//! per process; so every test runs its body in a child process of this
//! test binary whose `SOFTHSM2_CONF` names a token directory of its own.
//! Include with `#[path = "support/softhsm.rs"] mod softhsm;`.
#![allow(clippy::unwrap_used, dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;

use meshid_ca::config::{KeyManagerKind, KeyType, KeysConfig, Pkcs11Config};

/// Where Debian's `softhsm2` package puts the module.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The user PIN of every token made here.
pub const PIN: &str = "4321";
/// Set in the child process.
const CHILD: &str = "MESHID_SOFTHSM_TEST_CHILD";

/// The token directory of this (child) process.
#[derive(Debug)]
pub struct Hsm {
    /// A scratch directory beside the tokens (PIN file, CA data).
    pub dir: PathBuf,
    conf: PathBuf,
}

/// Runs `body` in a child process with its own SoftHSM token directory.
/// `name` is the test function's name (the child runs only that test).
pub fn run<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Hsm) -> Fut,
    Fut: Future<Output = ()>,
{
    assert!(
        Path::new(MODULE).exists(),
        "{MODULE} is missing: install SoftHSM2 (apt-get install softhsm2; ./scripts/test does)"
    );
    if let Ok(conf) = std::env::var(CHILD) {
        let conf = PathBuf::from(conf);
        let hsm = Hsm {
            dir: conf.parent().unwrap().join("scratch"),
            conf,
        };
        std::fs::create_dir_all(&hsm.dir).unwrap();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(body(hsm));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tokens = tmp.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, &conf)
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the test's child process failed:\n{text}"
    );
    assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
}

impl Hsm {
    /// Initialises a token labelled `label` with [`PIN`].
    pub fn init_token(&self, label: &str) {
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", "12345678", "--pin", PIN])
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A PIN file holding `pin` (mode 0600).
    pub fn pin_file(&self, pin: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(format!("pin-{}", pin.len()));
        std::fs::write(&path, format!("{pin}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// `[keys.pkcs11]` for `token` with the right PIN.
    pub fn pkcs11(&self, token: &str, key_type: KeyType) -> Pkcs11Config {
        Pkcs11Config {
            module: MODULE.into(),
            token_label: Some(token.into()),
            slot: None,
            pin_file: Some(self.pin_file(PIN)),
            pin_env: None,
            key_label: meshid_ca::config::DEFAULT_KEY_LABEL.into(),
            key_type,
            sessions: 4,
        }
    }

    /// `[keys]` with `manager = "pkcs11"` and `p`.
    pub fn keys(p: Pkcs11Config) -> KeysConfig {
        KeysConfig {
            manager: KeyManagerKind::Pkcs11,
            pkcs11: Some(p),
        }
    }
}
