//! The result table, printed and written to a file.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

/// Rows of `metric | value | goal`.
#[derive(Debug, Default)]
pub struct Report {
    header: Vec<String>,
    rows: Vec<(String, String, String)>,
}

// === impl Report ===

impl Report {
    /// A line above the table.
    pub fn note(&mut self, line: impl Into<String>) {
        self.header.push(line.into());
    }

    /// A row without a goal.
    pub fn row(&mut self, metric: &str, value: impl Into<String>) {
        self.rows.push((metric.into(), value.into(), String::new()));
    }

    /// A row checked against a goal.
    pub fn goal(&mut self, metric: &str, value: impl Into<String>, goal: &str, met: bool) {
        let verdict = format!("{goal} {}", if met { "MET" } else { "MISSED" });
        self.rows.push((metric.into(), value.into(), verdict));
    }

    /// The table as text.
    pub fn render(&self) -> String {
        let w0 = self.rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w1 = self.rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        let mut out = String::new();
        for h in &self.header {
            let _ = writeln!(out, "{h}");
        }
        for (m, v, g) in &self.rows {
            let _ = writeln!(out, "  {m:<w0$}  {v:>w1$}  {g}");
        }
        out
    }

    /// Writes the table to `path`, creating its directory.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(path, self.render())
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// `1.23 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// `12.3 ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// KiB as decimal megabytes, `12.3 MB` (the unit the goals use).
pub fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 * 1024.0 / 1e6)
}

/// `VmRSS` with its anonymous part, threads and open descriptors:
/// `45.1 MB (anon 40.2 MB, 12 threads, 20 fds)`.
pub fn rss(r: &crate::procfs::Rss) -> String {
    format!(
        "{} (anon {}, {} threads, {} fds)",
        mb(r.now_kib),
        mb(r.anon_kib),
        r.threads,
        r.fds
    )
}

/// The `q` quantile (nearest rank) of sorted `v`.
pub fn quantile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}
