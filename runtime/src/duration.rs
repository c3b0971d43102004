//! The one duration grammar of every meshid config file and flag:
//! humantime's (`500ms`, `90s`, `5m`, `1h 30m`, `1d`). A bare number has no
//! unit and is refused with an error that shows the fix.
//!
//! Use [`parse`] as a clap `value_parser`, [`format()`] to print one back in
//! the same grammar, and this module as a serde field
//! attribute: `#[serde(with = "meshid_runtime::duration")]` for a
//! `Duration`, `#[serde(default, with = "meshid_runtime::duration::option")]`
//! for an `Option<Duration>`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// Parses `s` in humantime's grammar; the error says what to write.
pub fn parse(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("{s:?} is not a duration ({e}); write e.g. \"90s\", \"5m\" or \"1h 30m\"")
    })
}

/// Writes `d` in the grammar [`parse`] reads (`5400s` as `1h 30m`).
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Deserializes a [`Duration`] from a string such as `"1h 30m"`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// The same for an optional field (absent or `null`: `None`).
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Deserializes an `Option<Duration>`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] Duration);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(v)| v))
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"90s\", \"5m\" or \"1h 30m\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "{v} has no unit; write a duration such as \"{v}s\" or \"{v}ms\""
        )))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        if let Ok(v) = u64::try_from(v) {
            return self.visit_u64(v);
        }
        Err(E::custom(format!(
            "{v} is not a duration; write one such as \"90s\", \"5m\" or \"1h 30m\""
        )))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "{v} has no unit; write a duration such as \"{v}s\" or \"1m 30s\""
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Cfg {
        #[serde(with = "super")]
        ttl: Duration,
        #[serde(default, with = "super::option")]
        poll: Option<Duration>,
    }

    fn toml_cfg(text: &str) -> Result<Cfg, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_the_humantime_grammar() {
        for (text, secs) in [
            ("90s", 90),
            ("5m", 300),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("1d", 86400),
        ] {
            assert_eq!(parse(text).unwrap(), Duration::from_secs(secs), "{text}");
        }
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        let c = toml_cfg("ttl = \"2h\"\npoll = \"500ms\"").unwrap();
        assert_eq!(c.ttl, Duration::from_secs(7200));
        assert_eq!(c.poll, Some(Duration::from_millis(500)));
        assert_eq!(toml_cfg("ttl = \"1s\"").unwrap().poll, None);
        for secs in [1, 90, 5400, 86400 + 61] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse(&format(d)).unwrap(), d, "{}", format(d));
        }
        assert_eq!(format(Duration::from_secs(5400)), "1h 30m");
    }

    #[test]
    fn refuses_bare_numbers_and_garbage_showing_the_fix() {
        for (text, hint) in [
            ("ttl = \"90\"", "write e.g. \"90s\""),
            ("ttl = 90", "\"90s\""),
            ("ttl = -5", "not a duration"),
            ("ttl = \"soon\"", "not a duration"),
            ("ttl = \"1s\"\npoll = 5", "\"5ms\""),
        ] {
            let e = toml_cfg(text).unwrap_err();
            assert!(e.contains(hint), "{text}: {e}");
        }
        assert!(parse("").is_err());
        assert!(parse("-1s").is_err());
    }
}
