//! Scrapes a Prometheus text endpoint over plain HTTP/1.1 on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Largest `/metrics` body read.
const MAX_BODY: u64 = 4 * 1024 * 1024;
/// How long one scrape may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /metrics` from `addr`; the body as text.
pub async fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    tokio::time::timeout(TIMEOUT, get(addr))
        .await
        .with_context(|| format!("scraping http://{addr}/metrics took longer than {TIMEOUT:?}"))?
}

async fn get(addr: SocketAddr) -> anyhow::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to http://{addr}/metrics"))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await?;
    let mut raw = Vec::new();
    s.take(MAX_BODY).read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("the metrics endpoint sent no HTTP header")?;
    anyhow::ensure!(
        head.lines().next().is_some_and(|l| l.contains(" 200")),
        "the metrics endpoint answered {:?}",
        head.lines().next().unwrap_or_default()
    );
    Ok(body.to_owned())
}

/// The value of the first sample named `name` whose label set contains
/// every one of `labels` (e.g. `kind="x509"`).
pub fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labelset, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once('}')?,
                None if rest.starts_with(' ') => ("", rest),
                None => return None,
            };
            if !labels.iter().all(|l| labelset.contains(l)) {
                return None;
            }
            value.split_whitespace().next()?.parse().ok()
        })
}
