//! `connections:`: how many connections a listener holds and how long an
//! idle or slow one may stay.

use serde::Deserialize;
use std::time::Duration;

/// Per-listener connection limits and timeouts (inbound and outbound).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Most open connections per listener; more are accepted and closed
    /// at once (counted in `meshid_proxy_listener_connections_refused`).
    #[serde(default = "default_max")]
    pub max_per_listener: usize,
    /// Longest an HTTP/1.1 client may take to send a request's headers,
    /// in seconds (a slow client is closed).
    #[serde(default = "default_header_read")]
    pub header_read_timeout_secs: u64,
    /// How long an HTTP connection with no request in flight stays open,
    /// in seconds (also a connection that never sends a request).
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_per_listener: default_max(),
            header_read_timeout_secs: default_header_read(),
            idle_timeout_secs: default_idle(),
        }
    }
}

// === impl ConnectionLimits ===

impl ConnectionLimits {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_per_listener == 0 {
            return Err("connections.max_per_listener must be at least 1".into());
        }
        if self.header_read_timeout_secs == 0 || self.idle_timeout_secs == 0 {
            return Err(
                "connections.header_read_timeout_secs and idle_timeout_secs must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }

    /// The header read timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

fn default_max() -> usize {
    4096
}

fn default_header_read() -> u64 {
    10
}

fn default_idle() -> u64 {
    300
}
