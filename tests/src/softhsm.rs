//! SoftHSM2 token directories for the PKCS#11 tests: a `softhsm2.conf`
//! naming a token directory of its own, and tokens made there with
//! `softhsm2-util`. SoftHSM reads `SOFTHSM2_CONF` once, when a process
//! initialises its module, so give [`SoftHsm::conf`] to the process under
//! test (`Command::env("SOFTHSM2_CONF", …)`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's `softhsm2` package puts the PKCS#11 module.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A token directory and the config naming it.
#[derive(Debug, Clone)]
pub struct SoftHsm {
    conf: PathBuf,
}

impl SoftHsm {
    /// Writes `<dir>/softhsm2.conf` for the token directory `<dir>/tokens`
    /// (created). Panics, naming the package, when SoftHSM2 is missing.
    pub fn new(dir: &Path) -> Self {
        assert!(
            Path::new(MODULE).exists(),
            "{MODULE} is missing: apt-get install softhsm2 (./scripts/test does)"
        );
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap_or_else(|e| panic!("{}: {e}", tokens.display()));
        let conf = dir.join("softhsm2.conf");
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        );
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
        Self { conf }
    }

    /// An existing config (in a child process that was handed its path).
    pub fn at(conf: impl Into<PathBuf>) -> Self {
        Self { conf: conf.into() }
    }

    /// The `SOFTHSM2_CONF` path.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Initialises a token labelled `label` in a free slot, user PIN `pin`.
    pub fn init_token(&self, label: &str, pin: &str) {
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", "so-secret-1234", "--pin", pin])
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .unwrap_or_else(|e| panic!("cannot run softhsm2-util: {e}"));
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
