//! The limits an issuance rate is read against: the crypto ceiling (CSR
//! verify + sign through the authority, no gRPC, no store) and the store
//! ceiling (issuance records per second through the store alone).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use meshid_ca::authority::X509SvidSpec;
use meshid_ca::server::CaServer;
use meshid_ca::store::{IssuanceRecord, Store};
use meshid_identity::{PrivateKey, SpiffeId, verify_csr};

use crate::load::csr;

/// CSR verify + sign per second on `cores` threads, straight through
/// `ca`'s authority.
pub async fn crypto(ca: &CaServer, cores: usize, duration: Duration) -> anyhow::Result<f64> {
    let csr = Arc::new(csr(&PrivateKey::generate_p256()?)?);
    let id: SpiffeId = "spiffe://bench.example/crypto".parse()?;
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

/// The next issuance record serial (unique over every store ceiling run in
/// this process: the runs share the replicas' database).
static SERIAL: AtomicU64 = AtomicU64::new(1);

/// Issuance records per second written by `writers` concurrent writers,
/// `batch` records per `record_issuances` call; writer `w` uses
/// `stores[w % stores.len()]` (so with two replicas the writers are split
/// between the replicas' connection pools, as the agents are).
pub async fn store(
    stores: &[Arc<dyn Store>],
    writers: usize,
    batch: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers.max(1) {
        let store = Arc::clone(&stores[w % stores.len()]);
        tasks.push(tokio::spawn(async move {
            let id: SpiffeId = "spiffe://bench.example/store".parse()?;
            let mut n = 0u64;
            while start.elapsed() < duration {
                let now = SystemTime::now();
                let records: Vec<_> = (0..batch)
                    .map(|_| {
                        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
                        IssuanceRecord {
                            serial: format!("ffff{serial:028x}"),
                            spiffe_id: id.clone(),
                            agent_id: None,
                            entry_id: None,
                            not_after: now + Duration::from_secs(3600),
                            issued_at: now,
                            ca_key_id: None,
                            tenant: String::new(),
                        }
                    })
                    .collect();
                store.record_issuances(&records).await?;
                n += batch as u64;
            }
            anyhow::Ok(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}
