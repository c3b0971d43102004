//! `tracing` set-up: text or JSON lines on stderr, filtered by `RUST_LOG`
//! (default `info`). Text lines are coloured only when stderr is a terminal
//! and `NO_COLOR` is unset, so log files and collectors get plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber.
pub fn init(format: Format) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour());
    let _ = match format {
        Format::Text => b.try_init(),
        Format::Json => b.json().try_init(),
    };
}

/// Whether text lines may carry ANSI colour codes.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
