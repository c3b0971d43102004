//! Duration settings that used to be integers under a key with a unit
//! suffix (`drain_timeout_secs: 10`) and are now durations in the one
//! grammar of every meshid config (`drain_timeout: 10s`). The old key still
//! works, with a deprecation warning at load; giving both is refused.

use std::fmt;
use std::time::Duration;

use meshid_runtime::duration::format;

/// The unit of an old integer key.
#[derive(Clone, Copy, Debug)]
pub(super) enum Unit {
    /// `*_secs`.
    Secs,
    /// `*_ms`.
    Millis,
}

/// One renamed setting: its key, its old key, and its default.
#[derive(Clone, Copy, Debug)]
pub(super) struct Renamed {
    /// The key, with its section (`connections.idle_timeout`).
    pub(super) key: &'static str,
    /// The old integer key, with its section.
    pub(super) old_key: &'static str,
    /// What the old integer counted.
    pub(super) unit: Unit,
    /// The value when neither key is given.
    pub(super) default: Duration,
    /// Whether zero is a meaningful value (`drain_timeout: 0s`: close open
    /// connections at once) rather than a mistake.
    pub(super) zero_ok: bool,
}

/// An old key found in a config, and what to write instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deprecated {
    /// The old key.
    pub old_key: &'static str,
    /// The key to use instead.
    pub key: &'static str,
    /// The value the old key gave.
    pub value: Duration,
}

// === impl Renamed ===

impl Renamed {
    /// The value: the key's, else the old key's, else the default.
    pub(super) fn value(&self, new: Option<Duration>, old: Option<u64>) -> Duration {
        new.or_else(|| old.map(|n| self.of_old(n)))
            .unwrap_or(self.default)
    }

    /// Refuses both keys at once, and a zero duration unless `zero_ok`.
    pub(super) fn check(&self, new: Option<Duration>, old: Option<u64>) -> Result<(), String> {
        if new.is_some() && old.is_some() {
            return Err(format!(
                "`{}` and the deprecated `{}` are both set; keep only `{}`",
                self.key, self.old_key, self.key
            ));
        }
        if !self.zero_ok && self.value(new, old).is_zero() {
            return Err(format!("`{}` must be more than zero", self.key));
        }
        Ok(())
    }

    /// The deprecation, if the old key is used.
    pub(super) fn deprecated(&self, old: Option<u64>) -> Option<Deprecated> {
        old.map(|n| Deprecated {
            old_key: self.old_key,
            key: self.key,
            value: self.of_old(n),
        })
    }

    fn of_old(&self, n: u64) -> Duration {
        match self.unit {
            Unit::Secs => Duration::from_secs(n),
            Unit::Millis => Duration::from_millis(n),
        }
    }
}

// === impl Deprecated ===

impl fmt::Display for Deprecated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "proxy config key `{}` is deprecated and will be removed; write `{}: {}` instead",
            self.old_key,
            self.key,
            format(self.value)
        )
    }
}
