//! `[rotation]`: when the CA prepares and activates its next signing keys.
//!
//! ```toml
//! [rotation]
//! prepare_at = 0.5            # prepare the next key at 1/2 of the active one's life
//! activate_at = 0.8333        # activate it when 1/6 remains
//! propagation_delay = "30s"   # never activate sooner after the prepared key was published
//! reissue_spread = "60s"      # agents re-issue SVIDs of a retired key within this
//! # jwt_key_ttl = "365d"      # life of a JWT signing key (default: ca_ttl)
//! warn_before = "30d"         # log a warning this long before an authority expires
//! ```
//!
//! A fraction `f` of a key's life `L` is the time `not_before + f·L`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::ConfigError;

/// A fraction of a key's life, strictly between 0 and 1.
#[derive(Debug, Clone, Copy)]
pub struct Fraction(f64);

// === impl Fraction ===

impl Fraction {
    /// `value` if it is strictly between 0 and 1.
    pub fn new(value: f64) -> Option<Self> {
        (value > 0.0 && value < 1.0).then_some(Self(value))
    }

    /// The fraction as a number.
    pub fn get(self) -> f64 {
        self.0
    }

    /// This fraction of `life`.
    pub fn of(self, life: Duration) -> Duration {
        life.mul_f64(self.0)
    }
}

impl PartialEq for Fraction {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Fraction {}

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(d)?;
        Self::new(value).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{value} is not a fraction of a key's life; use a number between 0 and 1, \
                 e.g. 0.5"
            ))
        })
    }
}

/// `[rotation]`: the automatic key schedule and how agents follow it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// Prepare (make and publish) the next key at this fraction of the
    /// active key's life.
    #[serde(default = "default_prepare_at")]
    pub prepare_at: Fraction,
    /// Activate the prepared key at this fraction of the active key's life.
    #[serde(default = "default_activate_at")]
    pub activate_at: Fraction,
    /// The least time between publishing a prepared key and activating it,
    /// so every agent, proxy and Envoy trusts it first.
    #[serde(
        default = "default_propagation_delay",
        with = "meshid_runtime::duration"
    )]
    pub propagation_delay: Duration,
    /// Agents re-issue SVIDs of a key that no longer signs at a random
    /// point within this time (spreading the load on the CA).
    #[serde(default = "default_reissue_spread", with = "meshid_runtime::duration")]
    pub reissue_spread: Duration,
    /// Life of a JWT signing key; default: `ca_ttl`.
    #[serde(default, with = "meshid_runtime::duration::option")]
    pub jwt_key_ttl: Option<Duration>,
    /// Warn in the log this long before an authority in the bundle (or the
    /// active key) expires with no successor prepared; clamped to half the
    /// key's life.
    #[serde(default = "default_warn_before", with = "meshid_runtime::duration")]
    pub warn_before: Duration,
}

fn default_prepare_at() -> Fraction {
    Fraction(0.5)
}
fn default_activate_at() -> Fraction {
    Fraction(5.0 / 6.0)
}
fn default_propagation_delay() -> Duration {
    Duration::from_secs(30)
}
fn default_reissue_spread() -> Duration {
    Duration::from_secs(60)
}
fn default_warn_before() -> Duration {
    Duration::from_secs(30 * 86400)
}

/// Longest propagation delay or reissue spread (a day).
const MAX_DELAY: Duration = Duration::from_secs(86400);

impl Default for RotationConfig {
    fn default() -> Self {
        Self {
            prepare_at: default_prepare_at(),
            activate_at: default_activate_at(),
            propagation_delay: default_propagation_delay(),
            reissue_spread: default_reissue_spread(),
            jwt_key_ttl: None,
            warn_before: default_warn_before(),
        }
    }
}

// === impl RotationConfig ===

impl RotationConfig {
    /// The schedule is in order and its times in range; `ca_ttl` and
    /// `max_jwt_ttl` bound the JWT key's life.
    pub(super) fn check(&self, ca_ttl: Duration, max_jwt_ttl: Duration) -> Result<(), ConfigError> {
        let invalid = |field, reason: String| ConfigError::Invalid { field, reason };
        if self.prepare_at.get() >= self.activate_at.get() {
            return Err(invalid(
                "rotation.prepare_at",
                format!(
                    "{} is not before rotation.activate_at ({}); a key must be prepared before \
                     it is activated (0 < prepare_at < activate_at < 1)",
                    self.prepare_at.get(),
                    self.activate_at.get()
                ),
            ));
        }
        for (field, d) in [
            ("rotation.propagation_delay", self.propagation_delay),
            ("rotation.reissue_spread", self.reissue_spread),
        ] {
            if d > MAX_DELAY {
                return Err(invalid(field, "must be at most 1 day".into()));
            }
        }
        let window = self.activate_at.of(ca_ttl) - self.prepare_at.of(ca_ttl);
        if self.propagation_delay > window {
            return Err(invalid(
                "rotation.propagation_delay",
                format!(
                    "is longer than the time between prepare_at and activate_at of a ca_ttl \
                     root ({}); shorten it or lengthen ca_ttl",
                    meshid_runtime::duration::format(window)
                ),
            ));
        }
        if let Some(ttl) = self.jwt_key_ttl
            && ttl <= max_jwt_ttl
        {
            return Err(invalid(
                "rotation.jwt_key_ttl",
                "must be longer than max_jwt_ttl (a JWT key outlives the tokens it signs)".into(),
            ));
        }
        Ok(())
    }

    /// The life of a new JWT key.
    pub fn jwt_key_ttl(&self, ca_ttl: Duration) -> Duration {
        self.jwt_key_ttl.unwrap_or(ca_ttl)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::CaConfig;

    /// A CA config of `extra` TOML with 1-minute SVIDs, checked as at start.
    fn check(extra: &str) -> Result<CaConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "trust_domain = \"example.org\"\ndata_dir = {:?}\ndefault_x509_ttl = \"1m\"\n\
             max_x509_ttl = \"1m\"\nagent_ttl = \"1m\"\nmax_jwt_ttl = \"1m\"\n\
             default_jwt_ttl = \"30s\"\n{extra}",
            dir.path().display().to_string()
        );
        let cfg = CaConfig::from_toml(&text)?;
        cfg.clone().validate()?;
        Ok(cfg)
    }

    fn refused(extra: &str, field: &str, says: &str) {
        let e = check(extra).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(field) && text.contains(says),
            "{extra}: {text}"
        );
    }

    #[test]
    fn defaults_and_a_compressed_test_schedule_are_accepted() {
        let cfg = check("").unwrap();
        assert_eq!(cfg.rotation, RotationConfig::default());
        assert_eq!(cfg.rotation.prepare_at.get(), 0.5);
        assert!((cfg.rotation.activate_at.get() - 5.0 / 6.0).abs() < 1e-9);
        assert_eq!(cfg.rotation.jwt_key_ttl(cfg.ca_ttl), cfg.ca_ttl);
        let cfg = check(
            "ca_ttl = \"2m\"\n[rotation]\nprepare_at = 0.25\nactivate_at = 0.5\n\
             propagation_delay = \"10s\"\nreissue_spread = \"5s\"\njwt_key_ttl = \"3m\"\n\
             warn_before = \"1m\"\n",
        )
        .unwrap();
        assert_eq!(cfg.ca_ttl, Duration::from_secs(120));
        assert_eq!(
            cfg.rotation.prepare_at.of(cfg.ca_ttl),
            Duration::from_secs(30)
        );
        assert_eq!(
            cfg.rotation.jwt_key_ttl(cfg.ca_ttl),
            Duration::from_secs(180)
        );
    }

    #[test]
    fn an_unordered_or_out_of_range_schedule_is_refused_naming_the_setting() {
        refused(
            "[rotation]\nprepare_at = 0.9\n",
            "rotation.prepare_at",
            "0 < prepare_at < activate_at < 1",
        );
        refused(
            "[rotation]\nactivate_at = 1.0\n",
            "activate_at",
            "between 0 and 1",
        );
        refused(
            "[rotation]\nprepare_at = 0\n",
            "prepare_at",
            "between 0 and 1",
        );
        refused(
            "ca_ttl = \"2m\"\n[rotation]\npropagation_delay = \"1m\"\n",
            "rotation.propagation_delay",
            "lengthen ca_ttl",
        );
        refused(
            "[rotation]\nreissue_spread = \"2d\"\n",
            "rotation.reissue_spread",
            "at most 1 day",
        );
        refused(
            "[rotation]\njwt_key_ttl = \"30s\"\n",
            "rotation.jwt_key_ttl",
            "longer than max_jwt_ttl",
        );
        refused("[rotation]\nprepare = 0.5\n", "prepare", "unknown field");
    }
}
