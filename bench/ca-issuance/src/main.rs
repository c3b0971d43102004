//! CA issuance benchmark: N simulated agents sign X.509-SVIDs over real
//! mTLS gRPC against in-process CAs: one replica on SQLite in a temp dir,
//! or two replicas on one PostgreSQL database (`--store`).
//!
//! `cargo run --release -p meshid-bench-ca -- --agents 8 --batch 50 --duration 10 --store both`
//!
//! Agents pre-generate their CSRs, so client-side key generation is not
//! measured. With two replicas the agents are split between them (agent
//! `i` attests to and signs at replica `i % 2`, trusting that replica's
//! own bundle). Each configuration also measures the store ceiling
//! (issuance records per second, one writer and one per agent), and the
//! run the crypto ceiling (P-256 CSR verify + sign per second on all
//! cores), so the numbers can be read against their limits. With `--keys
//! softhsm` (or `both`: disk first, then SoftHSM2 in the same run) the CA
//! key is on a SoftHSM2 token, and the token's own ceiling (raw signatures
//! through the session pool, one thread per agent) is measured too. With
//! `--audit both` each store runs twice, without and with the `svid.issue`
//! audit records of every issuance batch (`[audit] issuances = false`, then the
//! default), and the summary gives the audit log's cost.
#![forbid(unsafe_code)]

mod backend;
mod ceiling;
mod client;
mod load;
mod replicas;

use std::time::Duration;

use backend::Keys;
use clap::Parser;
use meshid_ca::config::{KeyType, KeysConfig};
use replicas::{AuditChoice, Backend, Replicas, StoreChoice};

/// Seconds each ceiling is measured for.
const CEILING: Duration = Duration::from_secs(3);

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
    /// The CA's store: sqlite (one replica), postgres-2 (two replicas on
    /// one PostgreSQL database) or both (one after the other).
    #[arg(long, value_enum, default_value = "sqlite")]
    store: StoreChoice,
    /// A PostgreSQL server for postgres-2; the run creates its own database
    /// there (the role needs CREATEDB) and drops it at the end.
    #[arg(long, env = backend::POSTGRES_URL_ENV, hide_env_values = true)]
    postgres_url: Option<String>,
    /// Record every issuance in the audit log: on (the CA's default), off
    /// (`[audit] issuances = false`) or both (off, then on, per store).
    #[arg(long, value_enum, default_value = "on")]
    audit: AuditChoice,
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
            "--store".into(),
            args.store.name().into(),
            "--audit".into(),
            args.audit.name().into(),
        ];
        // The PostgreSQL URL reaches the child through the environment
        // (never on its command line).
        return backend::run_softhsm_child(&forwarded, args.postgres_url.as_deref());
    }
    run_in_runtime(&args, token.as_deref())
}

fn run_in_runtime(args: &Args, token: Option<&str>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args, token))
}

/// One configuration's results, for the summary.
struct Row {
    backend: Backend,
    audit: bool,
    unbatched: f64,
    batched: f64,
    store_one: f64,
    store_all: f64,
}

async fn run(args: &Args, token: Option<&str>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let keys = match token {
        Some(t) => backend::pkcs11_keys(t, dir.path(), args.token_key_type, args.agents)?,
        None => KeysConfig::default(),
    };
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
        "meshid CA issuance benchmark: {key}; {} agents, {cores} cores",
        args.agents
    );
    let writers = args.agents.max(1);
    let batch = args.batch.max(1);
    let mut rows = Vec::new();
    let runs = args
        .store
        .backends()
        .iter()
        .flat_map(|&b| args.audit.settings().iter().map(move |&a| (b, a)));
    for (n, (backend, audit)) in runs.enumerate() {
        let replicas = Replicas::start(backend, args.postgres_url.as_deref(), &keys, audit).await?;
        println!("== {}, {}", backend.label(), audit_label(audit));
        let mut agents = Vec::new();
        for i in 0..args.agents {
            agents.push(load::setup_agent(&replicas.cas[i % replicas.cas.len()], i).await?);
        }
        let duration = Duration::from_secs(args.duration);
        let mut rates = Vec::new();
        for b in [1, batch] {
            let r = load::phase(&agents, b, duration).await?;
            println!(
                "batch {b:>4}: {:>9.0} issuances/s  ({} SVIDs in {:.1}s, {} calls)  call latency p50 {:.2} ms  p99 {:.2} ms",
                r.rate(),
                r.issued,
                r.elapsed.as_secs_f64(),
                r.latencies.len(),
                r.pct_ms(0.50),
                r.pct_ms(0.99),
            );
            rates.push(r.rate());
        }
        if n == 0 {
            let crypto = ceiling::crypto(&replicas.cas[0], cores, CEILING).await?;
            println!(
                "crypto ceiling: {crypto:>9.0} CSR verify + sign /s on {cores} cores (no gRPC, no store)"
            );
            if token.is_some() {
                let threads = args.agents.max(1);
                let raw = tokio::task::block_in_place(|| {
                    backend::token_ceiling(&keys, dir.path(), threads, CEILING)
                })?;
                println!(
                    "token ceiling:  {raw:>9.0} raw signatures/s through the session pool, {threads} threads (no certificate)"
                );
            }
        }
        let stores = replicas.stores();
        let store_one = ceiling::store(&stores, 1, batch, CEILING).await?;
        let store_all = ceiling::store(&stores, writers, batch, CEILING).await?;
        println!(
            "store ceiling:  {store_one:>9.0} issuance records/s with one writer, {store_all:.0} with {writers} (record_issuances, {batch} per call)"
        );
        replicas.shutdown().await?;
        rows.push(Row {
            backend,
            audit,
            unbatched: rates[0],
            batched: rates[1],
            store_one,
            store_all,
        });
    }
    if rows.len() > 1 {
        println!(
            "\n| store | audit | batch 1, SVIDs/s | batch {batch}, SVIDs/s | store ceiling, 1 writer | {writers} writers |\n|---|---|---|---|---|---|"
        );
        for r in &rows {
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
                r.backend.label(),
                audit_label(r.audit),
                r.unbatched,
                r.batched,
                r.store_one,
                r.store_all
            );
        }
        for pair in rows.windows(2) {
            if let [off, on] = pair
                && off.backend == on.backend
                && !off.audit
                && on.audit
            {
                println!(
                    "audit cost, {}: batch 1 {:+.1}%, batch {batch} {:+.1}%, store ceiling {:+.1}% / {:+.1}%",
                    on.backend.label(),
                    change(off.unbatched, on.unbatched),
                    change(off.batched, on.batched),
                    change(off.store_one, on.store_one),
                    change(off.store_all, on.store_all),
                );
            }
        }
    }
    Ok(())
}

fn audit_label(audit: bool) -> &'static str {
    if audit { "audit on" } else { "audit off" }
}

/// The change from `before` to `after`, in percent.
fn change(before: f64, after: f64) -> f64 {
    if before > 0.0 {
        (after / before - 1.0) * 100.0
    } else {
        0.0
    }
}
