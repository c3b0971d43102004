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

/// Counters read from the agent's and the CA's `/metrics` at one moment.
#[derive(Debug, Default, Clone, Copy)]
pub struct Scrape {
    /// SVIDs the agent serves.
    pub cached: f64,
    /// SVIDs the agent has had issued.
    pub issued: f64,
    /// SVIDs the agent re-issued early because the CA key rotated.
    pub reissued: f64,
    /// Failed issuances and rotations.
    pub failures: f64,
    /// The agent's next planned rotation, Unix seconds.
    pub next_rotation: f64,
    /// X.509-SVIDs the CA signed.
    pub ca_signed: f64,
    /// Seconds the CA spent verifying and signing (histogram sum).
    pub ca_sign_secs: f64,
}

/// Reads [`Scrape`] from the agent's and the CA's ops endpoints.
pub async fn read(agent_ops: SocketAddr, ca_ops: SocketAddr) -> anyhow::Result<Scrape> {
    let agent = scrape(agent_ops).await?;
    let ca = scrape(ca_ops).await?;
    Ok(Scrape {
        cached: sample(&agent, "meshid_agent_svids_cached", &[]).unwrap_or(0.0),
        issued: sample(&agent, "meshid_agent_svids_issued_total", &[]).unwrap_or(0.0),
        reissued: sample(
            &agent,
            "meshid_agent_svids_reissued_total",
            &["reason=\"rotation\""],
        )
        .unwrap_or(0.0),
        failures: sample(&agent, "meshid_agent_rotation_failures_total", &[]).unwrap_or(0.0),
        next_rotation: sample(&agent, "meshid_agent_next_rotation_timestamp_seconds", &[])
            .unwrap_or(0.0),
        ca_signed: ca_signed(&ca),
        ca_sign_secs: sample(&ca, "meshid_ca_signing_latency_seconds_sum", &[]).unwrap_or(0.0),
    })
}

/// X.509-SVIDs signed, from the CA's `/metrics` text.
pub fn ca_signed(ca: &str) -> f64 {
    sample(
        ca,
        "meshid_ca_signatures_total",
        &["kind=\"x509\"", "result=\"ok\""],
    )
    .unwrap_or(0.0)
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
