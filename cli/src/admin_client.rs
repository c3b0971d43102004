//! The CA admin API client shared by `meshid entry|token|agent|bundle`.
//!
//! The admin API is served on a local Unix socket; whoever can open it is
//! an administrator. Its path comes from, in order: `--admin-socket`, the
//! `MESHID_ADMIN_SOCKET` environment variable, then
//! [`DEFAULT_ADMIN_SOCKET`] (where `meshid ca serve` puts it with its
//! default data directory, relative to the working directory).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use meshid_proto::ca::admin_client::AdminClient;
use tonic::transport::Channel;

/// The admin socket of a CA started with its default data directory.
pub const DEFAULT_ADMIN_SOCKET: &str = "./.meshid/ca/admin.sock";

/// Flags every admin command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// Path of the CA's admin Unix socket.
    #[arg(
        long,
        env = "MESHID_ADMIN_SOCKET",
        default_value = DEFAULT_ADMIN_SOCKET,
        value_name = "PATH"
    )]
    pub admin_socket: PathBuf,
    /// Output format: `text` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human-readable text.
    Text,
    /// One JSON document on stdout.
    Json,
}

impl Conn {
    /// Connects to the admin socket.
    pub async fn connect(&self) -> anyhow::Result<AdminClient<Channel>> {
        connect(&self.admin_socket).await
    }
}

/// Connects to the admin API at `path`.
pub async fn connect(path: &Path) -> anyhow::Result<AdminClient<Channel>> {
    let channel = meshid_runtime::uds::channel(path).await.with_context(|| {
        format!(
            "cannot reach the CA admin socket {}; is `meshid ca serve` running? \
             Point to its socket with --admin-socket or MESHID_ADMIN_SOCKET",
            path.display()
        )
    })?;
    Ok(AdminClient::new(channel)
        .max_decoding_message_size(meshid_proto::MAX_MESSAGE_SIZE)
        .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE))
}

/// Turns a gRPC status from the CA into an error that shows the CA's own
/// explanation (which says what to fix).
pub fn refused(what: &str, status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what}: {} ({:?})", status.message(), status.code())
}

/// Seconds as the `u32` the wire wants, refusing what does not fit.
pub fn seconds(d: Duration) -> anyhow::Result<u32> {
    u32::try_from(d.as_secs()).map_err(|_| anyhow::anyhow!("duration {d:?} is too long"))
}

/// Formats seconds as a short duration (`1h`, `90s`, `2h30m`).
pub fn format_secs(secs: u64) -> String {
    if secs == 0 {
        return "default".into();
    }
    let (d, h, m, s) = (
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let mut out = String::new();
    for (v, u) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if v > 0 {
            out.push_str(&format!("{v}{u}"));
        }
    }
    out
}

/// Unix seconds as an RFC 3339 UTC time.
pub fn format_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seconds_format_compactly() {
        assert_eq!(format_secs(0), "default");
        assert_eq!(format_secs(90), "1m30s");
        assert_eq!(format_secs(3600), "1h");
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
    }
}
