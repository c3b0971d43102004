//! SoftHSM2 tokens for the PKCS#11 tests. SoftHSM reads `SOFTHSM2_CONF`
//! once, when the module is initialised, and a module is initialised once
//! per process; so every test runs its body in a child process of this
//! test binary whose `SOFTHSM2_CONF` names a token directory of its own.
//! Include with `#[path = "support/softhsm.rs"] mod softhsm;`.
#![allow(clippy::unwrap_used, dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;

use meshid_ca::config::{KeyManagerKind, KeyType, KeysConfig, Pkcs11Config};
pub use meshid_tests::softhsm::MODULE;
use meshid_tests::softhsm::SoftHsm;
/// The user PIN of every token made here.
pub const PIN: &str = "4321";
/// Set in the child process.
const CHILD: &str = "MESHID_SOFTHSM_TEST_CHILD";

/// The token directory of this (child) process.
#[derive(Debug)]
pub struct Hsm {
    /// A scratch directory beside the tokens (PIN file, CA data).
    pub dir: PathBuf,
    tokens: SoftHsm,
}

/// Runs `body` in a child process with its own SoftHSM token directory.
/// `name` is the test function's name (the child runs only that test).
pub fn run<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Hsm) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Ok(conf) = std::env::var(CHILD) {
        let conf = PathBuf::from(conf);
        let hsm = Hsm {
            dir: conf.parent().unwrap().join("scratch"),
            tokens: SoftHsm::at(conf),
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
    let tokens = SoftHsm::new(tmp.path());
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, tokens.conf())
        .env("SOFTHSM2_CONF", tokens.conf())
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
        self.tokens.init_token(label, PIN);
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
