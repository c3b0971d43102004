//! Where the benchmarked CA keeps its X.509 CA key: in the data directory
//! (`disk`) or on a SoftHSM2 token (`softhsm`).
//!
//! SoftHSM reads `SOFTHSM2_CONF` once, when its module is initialised; so
//! the SoftHSM run happens in a child process of this benchmark, started
//! with `SOFTHSM2_CONF` naming a token directory in a temp dir and a token
//! made there with `softhsm2-util`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use meshid_ca::config::{KeyManagerKind, KeyType, KeysConfig, MAX_SESSIONS, Pkcs11Config};
use meshid_ca::keymanager::{KeyManager, Pkcs11KeyManager};
use meshid_ca::upstream::CA_KEY_SLOT;

/// Where Debian's `softhsm2` package puts the module.
const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The token the child process uses (set by the parent).
const TOKEN_ENV: &str = "MESHID_BENCH_SOFTHSM_TOKEN";
const PIN: &str = "1234";
/// Where `--postgres-url` is read from when the flag is not given.
pub const POSTGRES_URL_ENV: &str = "MESHID_TEST_POSTGRES_URL";

/// `--keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Keys {
    /// A PKCS#8 file in the data directory.
    Disk,
    /// A SoftHSM2 token.
    Softhsm,
    /// Disk, then SoftHSM2, in one run.
    Both,
}

/// The token this (child) process benchmarks, if it is the SoftHSM run.
pub fn token_from_env() -> Option<String> {
    std::env::var(TOKEN_ENV).ok()
}

/// Runs this benchmark again with `args` in a child process that uses a
/// fresh SoftHSM2 token (and `postgres_url`, if any, through the
/// environment); its output goes to ours.
pub fn run_softhsm_child(args: &[String], postgres_url: Option<&str>) -> anyhow::Result<()> {
    anyhow::ensure!(
        Path::new(MODULE).exists(),
        "{MODULE} is missing: apt-get install softhsm2"
    );
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens)?;
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )?;
    let token = "meshid-bench";
    let out = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", token])
        .args(["--so-pin", "12345678", "--pin", PIN])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .context("running softhsm2-util")?;
    anyhow::ensure!(
        out.status.success(),
        "softhsm2-util --init-token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new(std::env::current_exe()?);
    if let Some(url) = postgres_url {
        child.env(POSTGRES_URL_ENV, url);
    }
    let status = child
        .args(args)
        .args(["--keys", "softhsm"])
        .env("SOFTHSM2_CONF", &conf)
        .env(TOKEN_ENV, token)
        .status()?;
    anyhow::ensure!(status.success(), "the SoftHSM2 run failed: {status}");
    Ok(())
}

/// `[keys]` for `token` (PIN from a file in `dir`), `sessions` logged in.
pub fn pkcs11_keys(
    token: &str,
    dir: &Path,
    key_type: KeyType,
    sessions: usize,
) -> anyhow::Result<KeysConfig> {
    let pin_file = dir.join("token.pin");
    std::fs::write(&pin_file, PIN)?;
    Ok(KeysConfig {
        manager: KeyManagerKind::Pkcs11,
        pkcs11: Some(Pkcs11Config {
            module: MODULE.into(),
            token_label: Some(token.into()),
            slot: None,
            pin_file: Some(pin_file),
            pin_env: None,
            key_label: meshid_ca::config::DEFAULT_KEY_LABEL.into(),
            key_type,
            sessions: sessions.clamp(1, MAX_SESSIONS),
        }),
    })
}

/// Raw signatures per second on the token's CA key from `threads`
/// threads: digest, `C_Sign` through the session pool, DER encoding; no
/// certificate is built.
pub fn token_ceiling(
    keys: &KeysConfig,
    dir: &Path,
    threads: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let config = keys.token().context("no token configured")?;
    let manager = Pkcs11KeyManager::open(config, dir)?;
    let key = manager
        .load_signer(CA_KEY_SLOT)?
        .context("the CA key is not on the token")?;
    let start = Instant::now();
    let counts: Vec<u64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let key = key.clone();
                s.spawn(move || {
                    let msg = [0x5a_u8; 256];
                    let mut n = 0u64;
                    while start.elapsed() < duration {
                        if rcgen::SigningKey::sign(&key, &msg).is_err() {
                            break;
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).collect()
    });
    Ok(counts.iter().sum::<u64>() as f64 / start.elapsed().as_secs_f64())
}
