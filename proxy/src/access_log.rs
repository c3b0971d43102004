//! Access log: one JSON line per HTTP request or TCP connection.
//!
//! Lines are handed to a writer task over a bounded channel; when the writer
//! falls behind, lines are dropped (and counted) rather than slowing traffic.

use crate::config::AccessLogTarget;
use serde::Serialize;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// Lines buffered before new ones are dropped.
const QUEUE: usize = 8192;

/// One access log record.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// When the request or connection finished (RFC 3339, UTC).
    pub time: String,
    /// `inbound` or `outbound`.
    pub direction: &'a str,
    /// `http` or `tcp`.
    pub protocol: &'a str,
    /// Verified peer SPIFFE ID (inbound), or `local`.
    pub source: &'a str,
    /// Where the traffic went (address or expected SPIFFE ID).
    pub destination: &'a str,
    /// HTTP version the client used (`HTTP/1.1`, `HTTP/2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_version: Option<&'a str>,
    /// HTTP method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'a str>,
    /// HTTP path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'a str>,
    /// HTTP status sent back (0: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `allow`, `deny`, `deny(audit)`, or `error` when the proxy could not
    /// forward the traffic (see `error`).
    pub decision: &'a str,
    /// Why the traffic was not forwarded: `peer_id_mismatch`,
    /// `connect_failed`, another TLS handshake reason, `upstream_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// The deciding policy rule, `policy[rules[i]]`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Bytes received from the client.
    pub bytes_in: u64,
    /// Bytes sent to the client.
    pub bytes_out: u64,
    /// Wall time through the proxy, in milliseconds.
    pub duration_ms: f64,
    /// W3C trace id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Where entries go; cheap to clone.
#[derive(Clone, Debug)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<String>>,
    dropped: Arc<AtomicU64>,
}

// === impl AccessLog ===

impl AccessLog {
    /// A log that writes nothing.
    pub fn off() -> Self {
        Self {
            tx: None,
            dropped: Arc::default(),
        }
    }

    /// Starts the writer task for `target`.
    pub fn start(target: &AccessLogTarget) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => return Ok(Self::off()),
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("meshid-access-log".into())
            .spawn(move || write_loop(rx, out))?;
        Ok(Self {
            tx: Some(tx),
            dropped: Arc::default(),
        })
    }

    /// True if entries are written somewhere.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues one entry.
    pub fn log(&self, entry: &Entry<'_>) {
        let Some(tx) = &self.tx else { return };
        let Ok(mut line) = serde_json::to_string(entry) else {
            return;
        };
        line.push('\n');
        if tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many lines were dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn write_loop(mut rx: mpsc::Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::new(out);
    while let Some(line) = rx.blocking_recv() {
        let _ = out.write_all(line.as_bytes());
        while let Ok(more) = rx.try_recv() {
            let _ = out.write_all(more.as_bytes());
        }
        let _ = out.flush();
    }
}

/// RFC 3339 UTC time with milliseconds.
pub fn timestamp(t: SystemTime) -> String {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let dt = time::OffsetDateTime::UNIX_EPOCH + d;
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Milliseconds with microsecond precision.
pub fn millis(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}
