//! CA issuance benchmark: N simulated agents sign X.509-SVIDs over real
//! mTLS gRPC against an in-process CA backed by SQLite in a temp dir.
//!
//! `cargo run --release -p meshid-bench-ca -- --agents 8 --batch 50 --duration 10 --keys both`
//!
//! Agents pre-generate their CSRs, so client-side key generation is not
//! measured. The run also measures the crypto ceiling (P-256 CSR verify +
//! sign per second on all cores) and the store ceiling (issuance records
//! per second in batches) so the numbers can be read against their limits.
//! With `--keys softhsm` (or `both`: disk first, then SoftHSM2 in the same
//! run) the CA key is on a SoftHSM2 token, and the token's own ceiling (raw
//! signatures through the session pool, one thread per agent) is measured
//! too.
#![forbid(unsafe_code)]

mod backend;
mod client;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use backend::Keys;
use clap::Parser;
use meshid_ca::authority::X509SvidSpec;
use meshid_ca::config::{CaConfig, KeyType, KeysConfig};
use meshid_ca::node_attestor::join_token;
use meshid_ca::server::CaServer;
use meshid_ca::store::{IssuanceRecord, NewEntry};
use meshid_identity::{PrivateKey, Selector, verify_csr};
use meshid_proto::ca::{AttestRequest, SignX509SvidsRequest, SvidRequest, svid_result};

/// Benchmark flags.
#[derive(Debug, Parser)]
struct Args {
    /// Concurrent agents (one mTLS connection each).
    #[arg(long, default_value_t = 8)]
    agents: usize,
    /// CSRs per SignX509Svids call in the batched phase.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Where the CA key lives: disk, softhsm (a SoftHSM2 token) or both.
    #[arg(long, value_enum, default_value = "disk")]
    keys: Keys,
    /// The CA key type on the token: ec-p256, ec-p384, rsa-2048, rsa-3072
    /// or rsa-4096 (the disk key is always P-256).
    #[arg(long, default_value = "ec-p256")]
    token_key_type: KeyType,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let token = backend::token_from_env();
    if token.is_none() && args.keys != Keys::Disk {
        if args.keys == Keys::Both {
            run_in_runtime(&args, None)?;
        }
        let forwarded: Vec<String> = vec![
            "--agents".into(),
            args.agents.to_string(),
            "--batch".into(),
            args.batch.to_string(),
            "--duration".into(),
            args.duration.to_string(),
            "--token-key-type".into(),
            args.token_key_type.name().into(),
        ];
        return backend::run_softhsm_child(&forwarded);
    }
    run_in_runtime(&args, token.as_deref())
}

fn run_in_runtime(args: &Args, token: Option<&str>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args, token))
}

async fn run(args: &Args, token: Option<&str>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let keys = match token {
        Some(t) => backend::pkcs11_keys(t, dir.path(), args.token_key_type, args.agents)?,
        None => KeysConfig::default(),
    };
    let cfg = CaConfig {
        trust_domain: Some("bench.example".parse()?),
        data_dir: Some(dir.path().to_path_buf()),
        listen: "127.0.0.1:0".parse()?,
        ops_listen: "127.0.0.1:0".parse()?,
        keys: keys.clone(),
        ..CaConfig::default()
    };
    let ca = CaServer::start(cfg.validate()?).await?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let key = match token {
        Some(t) => format!(
            "CA key {} on SoftHSM2 token {t} ({} sessions)",
            args.token_key_type.name(),
            args.agents.clamp(1, meshid_ca::config::MAX_SESSIONS)
        ),
        None => "CA key ec-p256 on disk".into(),
    };
    println!(
        "meshid CA issuance benchmark: {key}; {} agents, {cores} cores, SQLite store in {}",
        args.agents,
        dir.path().display()
    );

    let mut agents = Vec::new();
    for i in 0..args.agents {
        agents.push(setup_agent(&ca, i).await?);
    }
    let duration = Duration::from_secs(args.duration);
    for batch in [1, args.batch] {
        let r = phase(&agents, batch, duration).await?;
        println!(
            "batch {batch:>4}: {:>9.0} issuances/s  ({} SVIDs in {:.1}s, {} calls)  call latency p50 {:.2} ms  p99 {:.2} ms",
            r.issued as f64 / r.elapsed.as_secs_f64(),
            r.issued,
            r.elapsed.as_secs_f64(),
            r.latencies.len(),
            pct(&r.latencies, 0.50),
            pct(&r.latencies, 0.99),
        );
    }
    let crypto = crypto_ceiling(&ca, cores, Duration::from_secs(3)).await?;
    println!(
        "crypto ceiling: {crypto:>9.0} CSR verify + sign /s on {cores} cores (no gRPC, no store)"
    );
    if token.is_some() {
        let threads = args.agents.max(1);
        let raw = tokio::task::block_in_place(|| {
            backend::token_ceiling(&keys, dir.path(), threads, Duration::from_secs(3))
        })?;
        println!(
            "token ceiling:  {raw:>9.0} raw signatures/s through the session pool, {threads} threads (no certificate)"
        );
    }
    let store = store_ceiling(&ca, args.batch.max(1), Duration::from_secs(3)).await?;
    println!(
        "store ceiling:  {store:>9.0} issuance records/s (record_issuances, {} per call, one writer)",
        args.batch.max(1)
    );
    ca.shutdown().await?;
    Ok(())
}

struct BenchAgent {
    client: meshid_proto::ca::node_client::NodeClient<tonic::transport::Channel>,
    entry_id: String,
    csrs: Vec<Vec<u8>>,
}

fn csr(key: &PrivateKey) -> anyhow::Result<Vec<u8>> {
    let params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    Ok(params.serialize_request(&key.key_pair()?)?.der().to_vec())
}

async fn setup_agent(ca: &CaServer, i: usize) -> anyhow::Result<BenchAgent> {
    let (token, rec) = join_token::generate(SystemTime::now(), Duration::from_secs(600), None);
    ca.store.create_join_token(&rec).await?;
    let bundle = ca.authority.bundle().as_ref().clone();
    let key = PrivateKey::generate_p256()?;
    let mut anon = client::connect(ca.node_addr, bundle.clone(), None).await?;
    let svid = anon
        .attest(AttestRequest {
            attestation_type: "join_token".into(),
            payload: token.into_bytes(),
            csr: csr(&key)?,
        })
        .await?
        .into_inner()
        .svid
        .context("attest returned no SVID")?;
    let agent_id: meshid_identity::SpiffeId = svid.spiffe_id.parse()?;
    let chain = svid
        .cert_chain
        .into_iter()
        .map(rustls::pki_types::CertificateDer::from)
        .collect();
    let entry = ca
        .store
        .create_entry(NewEntry::new(
            format!("spiffe://bench.example/workload/{i}").parse()?,
            agent_id,
            vec![Selector::parse(&format!("unix:uid:{}", 1000 + i))?],
        ))
        .await?;
    let client = client::connect(ca.node_addr, bundle, Some((chain, &key))).await?;
    let mut csrs = Vec::new();
    for _ in 0..64 {
        csrs.push(csr(&PrivateKey::generate_p256()?)?);
    }
    Ok(BenchAgent {
        client,
        entry_id: entry.id,
        csrs,
    })
}

struct PhaseResult {
    issued: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn phase(
    agents: &[BenchAgent],
    batch: usize,
    duration: Duration,
) -> anyhow::Result<PhaseResult> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for a in agents {
        let mut client = a.client.clone();
        let requests: Vec<SvidRequest> = (0..batch)
            .map(|k| SvidRequest {
                entry_id: a.entry_id.clone(),
                csr: a.csrs[k % a.csrs.len()].clone(),
                ttl_seconds: 0,
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut issued = 0u64;
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let resp = client
                    .sign_x509_svids(SignX509SvidsRequest {
                        requests: requests.clone(),
                    })
                    .await?;
                latencies.push(t.elapsed());
                issued += resp
                    .into_inner()
                    .results
                    .iter()
                    .filter(|r| matches!(r.result, Some(svid_result::Result::Svid(_))))
                    .count() as u64;
            }
            Ok::<_, tonic::Status>((issued, latencies))
        }));
    }
    let mut issued = 0;
    let mut latencies = Vec::new();
    for t in tasks {
        let (n, l) = t.await??;
        issued += n;
        latencies.extend(l);
    }
    latencies.sort();
    Ok(PhaseResult {
        issued,
        elapsed: start.elapsed(),
        latencies,
    })
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// CSR verify + sign on every core, straight through the authority.
async fn crypto_ceiling(ca: &CaServer, cores: usize, duration: Duration) -> anyhow::Result<f64> {
    let csr = Arc::new(csr(&PrivateKey::generate_p256()?)?);
    let id: meshid_identity::SpiffeId = "spiffe://bench.example/crypto".parse()?;
    let start = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..cores {
        let authority = ca.authority.load();
        let csr = Arc::clone(&csr);
        let id = id.clone();
        threads.push(tokio::task::spawn_blocking(move || {
            let mut n = 0u64;
            while start.elapsed() < duration {
                let Ok(v) = verify_csr(&csr) else { break };
                let spec = X509SvidSpec {
                    spiffe_id: &id,
                    dns_names: &[],
                    public_key_der: &v.public_key_der,
                    requested_ttl: Duration::ZERO,
                    entry_ttl: Duration::ZERO,
                };
                if authority.sign_x509_svid(&spec, SystemTime::now()).is_err() {
                    break;
                }
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in threads {
        total += t.await?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Issuance records per second through the store alone.
async fn store_ceiling(ca: &CaServer, batch: usize, duration: Duration) -> anyhow::Result<f64> {
    let id: meshid_identity::SpiffeId = "spiffe://bench.example/store".parse()?;
    let start = Instant::now();
    let mut n = 0u64;
    let mut serial = 0u64;
    while start.elapsed() < duration {
        let now = SystemTime::now();
        let records: Vec<_> = (0..batch)
            .map(|_| {
                serial += 1;
                IssuanceRecord {
                    serial: format!("ffff{serial:028x}"),
                    spiffe_id: id.clone(),
                    agent_id: None,
                    entry_id: None,
                    not_after: now + Duration::from_secs(3600),
                    issued_at: now,
                }
            })
            .collect();
        ca.store.record_issuances(&records).await?;
        n += batch as u64;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
