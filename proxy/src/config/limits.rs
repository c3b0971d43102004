//! `connections:`: how many connections a listener holds and how long an
//! idle or slow one may stay.

use serde::Deserialize;
use std::time::Duration;

use super::renamed::{Deprecated, Renamed, Unit};

/// Per-listener connection limits and timeouts (inbound and outbound).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Most open connections per listener; more are accepted and closed
    /// at once (counted in `meshid_proxy_listener_connections_refused`).
    #[serde(default = "default_max")]
    pub max_per_listener: usize,
    /// Longest an HTTP/1.1 client may take to send a request's headers
    /// (default 10s; a slow client is closed); read it with
    /// [`ConnectionLimits::header_read_timeout`].
    #[serde(default, with = "meshid_runtime::duration::option")]
    pub header_read_timeout: Option<Duration>,
    /// Deprecated: `header_read_timeout` in whole seconds.
    #[serde(default)]
    pub header_read_timeout_secs: Option<u64>,
    /// How long an HTTP connection with no request in flight stays open
    /// (default 5m; also a connection that never sends a request); read it
    /// with [`ConnectionLimits::idle_timeout`].
    #[serde(default, with = "meshid_runtime::duration::option")]
    pub idle_timeout: Option<Duration>,
    /// Deprecated: `idle_timeout` in whole seconds.
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_per_listener: default_max(),
            header_read_timeout: None,
            header_read_timeout_secs: None,
            idle_timeout: None,
            idle_timeout_secs: None,
        }
    }
}

const HEADER_READ: Renamed = Renamed {
    key: "connections.header_read_timeout",
    old_key: "connections.header_read_timeout_secs",
    unit: Unit::Secs,
    default: Duration::from_secs(10),
    zero_ok: false,
};

const IDLE: Renamed = Renamed {
    key: "connections.idle_timeout",
    old_key: "connections.idle_timeout_secs",
    unit: Unit::Secs,
    default: Duration::from_secs(300),
    zero_ok: false,
};

// === impl ConnectionLimits ===

impl ConnectionLimits {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_per_listener == 0 {
            return Err("connections.max_per_listener must be at least 1".into());
        }
        HEADER_READ.check(self.header_read_timeout, self.header_read_timeout_secs)?;
        IDLE.check(self.idle_timeout, self.idle_timeout_secs)
    }

    /// The header read timeout.
    pub fn header_read_timeout(&self) -> Duration {
        HEADER_READ.value(self.header_read_timeout, self.header_read_timeout_secs)
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        IDLE.value(self.idle_timeout, self.idle_timeout_secs)
    }

    /// The deprecated keys in use.
    pub(super) fn deprecated(&self) -> impl Iterator<Item = Deprecated> {
        [
            HEADER_READ.deprecated(self.header_read_timeout_secs),
            IDLE.deprecated(self.idle_timeout_secs),
        ]
        .into_iter()
        .flatten()
    }
}

fn default_max() -> usize {
    4096
}
