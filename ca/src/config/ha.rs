//! `[ha]`: running several CA replicas on one PostgreSQL store.
//!
//! ```toml
//! [ha]
//! # replica_id = "ca-east-1"     # default: kept in <data_dir>/replica-id
//! refresh_interval = "5s"        # how often the journal and bundle are re-read
//! lease_ttl = "30s"              # how long one rotation step holds the lease
//! ```
//!
//! Every replica re-reads the key journal and the stored trust bundle every
//! `refresh_interval`, so what another replica wrote is served within that
//! bound. Rotation steps run under the store lease `rotation`, held for
//! `lease_ttl` and renewed at half of it while a step runs; a replica that
//! dies holding it blocks rotation for at most `lease_ttl`.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::rotation::ReplicaId;

/// `refresh_interval` unless set.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// `lease_ttl` unless set.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// The range `refresh_interval` may take.
const REFRESH_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(3600));
/// The range `lease_ttl` may take.
const LEASE_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(600));

/// The `[ha]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaConfig {
    /// This replica's name in the shared store; `None`: the one kept in
    /// `<data_dir>/replica-id` (generated on first start).
    #[serde(default)]
    pub replica_id: Option<ReplicaId>,
    /// How often the key journal and the stored bundle are re-read
    /// (100ms to 1h).
    #[serde(
        default = "default_refresh_interval",
        with = "meshid_runtime::duration"
    )]
    pub refresh_interval: Duration,
    /// How long the rotation lease is held per step (1s to 10m).
    #[serde(default = "default_lease_ttl", with = "meshid_runtime::duration")]
    pub lease_ttl: Duration,
}

fn default_refresh_interval() -> Duration {
    DEFAULT_REFRESH_INTERVAL
}

fn default_lease_ttl() -> Duration {
    DEFAULT_LEASE_TTL
}

impl Default for HaConfig {
    fn default() -> Self {
        Self {
            replica_id: None,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }
}

// === impl HaConfig ===

impl HaConfig {
    /// Both durations in range.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        for (field, value, (min, max)) in [
            ("ha.refresh_interval", self.refresh_interval, REFRESH_RANGE),
            ("ha.lease_ttl", self.lease_ttl, LEASE_RANGE),
        ] {
            if value < min || value > max {
                return Err(ConfigError::Invalid {
                    field,
                    reason: format!(
                        "{} is out of range: use {} to {}",
                        humantime::format_duration(value),
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::CaConfig;

    fn parse(ha: &str) -> Result<CaConfig, ConfigError> {
        CaConfig::from_toml(&format!("trust_domain = \"example.org\"\n[ha]\n{ha}"))
    }

    #[test]
    fn defaults_apply_without_the_table_and_inside_an_empty_one() {
        let cfg = CaConfig::from_toml("trust_domain = \"example.org\"").unwrap();
        assert_eq!(cfg.ha, HaConfig::default());
        assert_eq!(parse("").unwrap().ha, HaConfig::default());
        assert_eq!(HaConfig::default().refresh_interval, Duration::from_secs(5));
        assert_eq!(HaConfig::default().lease_ttl, Duration::from_secs(30));
    }

    #[test]
    fn every_setting_is_read() {
        let ha =
            parse("replica_id = \"ca-east-1\"\nrefresh_interval = \"250ms\"\nlease_ttl = \"2m\"")
                .unwrap()
                .ha;
        assert_eq!(ha.replica_id.as_ref().unwrap().as_str(), "ca-east-1");
        assert_eq!(ha.refresh_interval, Duration::from_millis(250));
        assert_eq!(ha.lease_ttl, Duration::from_secs(120));
        ha.check_ok();
    }

    #[test]
    fn a_bad_replica_id_or_unknown_field_is_refused_at_parse() {
        let e = parse("replica_id = \"CA_1\"").unwrap_err().to_string();
        assert!(e.contains("a-z, 0-9 and -"), "{e}");
        let e = parse("replica = \"ca-1\"").unwrap_err().to_string();
        assert!(e.contains("replica"), "{e}");
        let e = parse("lease_ttl = 30").unwrap_err().to_string();
        assert!(e.contains("lease_ttl"), "{e}");
    }

    #[test]
    fn durations_out_of_range_name_the_setting_and_the_range() {
        for (toml, field, range) in [
            (
                "refresh_interval = \"50ms\"",
                "ha.refresh_interval",
                "100ms to 1h",
            ),
            (
                "refresh_interval = \"2h\"",
                "ha.refresh_interval",
                "100ms to 1h",
            ),
            ("lease_ttl = \"500ms\"", "ha.lease_ttl", "1s to 10m"),
            ("lease_ttl = \"11m\"", "ha.lease_ttl", "1s to 10m"),
        ] {
            let e = parse(toml).unwrap().ha.check().unwrap_err();
            let ConfigError::Invalid { field: f, .. } = &e else {
                panic!("{e}");
            };
            assert_eq!(*f, field);
            assert!(e.to_string().contains(range), "{e}");
        }
        for toml in [
            "refresh_interval = \"100ms\"",
            "refresh_interval = \"1h\"",
            "lease_ttl = \"1s\"",
            "lease_ttl = \"10m\"",
        ] {
            parse(toml).unwrap().ha.check_ok();
        }
    }

    impl HaConfig {
        fn check_ok(&self) {
            if let Err(e) = self.check() {
                panic!("{e}");
            }
        }
    }
}
