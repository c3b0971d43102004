//! The simulated agents: each attests to one CA replica with a join token,
//! gets one registration entry, and signs X.509-SVIDs over its own mTLS
//! connection to that replica.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use meshid_ca::node_attestor::join_token;
use meshid_ca::server::CaServer;
use meshid_ca::store::NewEntry;
use meshid_identity::{PrivateKey, Selector};
use meshid_proto::ca::node_client::NodeClient;
use meshid_proto::ca::{AttestRequest, SignX509SvidsRequest, SvidRequest, svid_result};
use tonic::transport::Channel;

use crate::client;

/// CSRs each agent makes up front (reused round-robin).
const CSRS_PER_AGENT: usize = 64;

/// One simulated agent, attested to one replica.
pub struct BenchAgent {
    client: NodeClient<Channel>,
    entry_id: String,
    csrs: Vec<Vec<u8>>,
}

/// A PKCS#10 request for `key` (no subject; the CA uses only the key).
pub fn csr(key: &PrivateKey) -> anyhow::Result<Vec<u8>> {
    let params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    Ok(params.serialize_request(&key.key_pair()?)?.der().to_vec())
}

/// Attests agent `i` to `ca` (trusting that replica's own bundle, so the
/// replicas' bundles need not agree), creates its entry and connects with
/// its agent SVID.
pub async fn setup_agent(ca: &CaServer, i: usize) -> anyhow::Result<BenchAgent> {
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
    for _ in 0..CSRS_PER_AGENT {
        csrs.push(csr(&PrivateKey::generate_p256()?)?);
    }
    Ok(BenchAgent {
        client,
        entry_id: entry.id,
        csrs,
    })
}

/// What one phase measured.
pub struct PhaseResult {
    /// SVIDs signed.
    pub issued: u64,
    /// How long the phase took.
    pub elapsed: Duration,
    /// Every call's latency, sorted.
    pub latencies: Vec<Duration>,
}

// === impl PhaseResult ===

impl PhaseResult {
    /// SVIDs signed per second.
    pub fn rate(&self) -> f64 {
        self.issued as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p` quantile of the call latency, milliseconds.
    pub fn pct_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1000.0
    }
}

/// Every agent signs `batch` CSRs per call, back to back, for `duration`.
pub async fn phase(
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
