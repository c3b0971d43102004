//! `entries`: registration entries for one agent, created in batches.
//!
//! Entry 0 selects the benchmark client's uid, so each Workload API stream
//! the benchmark opens gets exactly one SVID; entries 1.. select uids no
//! process has (`20000 + i`): the agent issues and rotates them, but serves
//! them to nobody. With `--per-uid N`, entry `i` selects uid
//! `20000 + i / N` instead, so `key-rotation` can watch every SVID with one
//! stream per uid.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use meshid_proto::ca::admin_client::AdminClient;
use meshid_proto::ca::{CreateEntriesRequest, Entry, Selector, entry_result};
use tonic::transport::Channel;

/// Flags of `entries`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The CA's admin Unix socket.
    #[arg(long)]
    admin_socket: PathBuf,
    /// Trust domain of the entries' SPIFFE IDs.
    #[arg(long)]
    trust_domain: String,
    /// Parent ID: the agent's SPIFFE ID (from `meshid token generate`).
    #[arg(long)]
    parent_id: String,
    /// Number of entries.
    #[arg(long, default_value_t = 10_000)]
    count: u32,
    /// Entries per CreateEntries call (the CA accepts up to 1000).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// uid entry 0 selects (the benchmark client's).
    #[arg(long, required_unless_present = "per_uid", conflicts_with = "per_uid")]
    bench_uid: Option<u32>,
    /// Entries per uid (from 20000 up), instead of `--bench-uid`.
    #[arg(long)]
    per_uid: Option<u32>,
    /// X.509-SVID lifetime in seconds (the CA accepts 60 and up).
    #[arg(long, default_value_t = 300)]
    ttl: u32,
}

/// The first uid the entries select besides `--bench-uid`.
pub const UID_BASE: u32 = 20_000;

/// Creates the entries and prints how long it took.
pub async fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(a.count > 0, "--count must be at least 1");
    anyhow::ensure!(
        (1..=1000).contains(&a.batch),
        "--batch must be between 1 and 1000"
    );
    let mut client = connect(&a.admin_socket).await?;
    let all: Vec<Entry> = (0..a.count).map(|i| entry(&a, i)).collect();
    let start = Instant::now();
    let mut created = 0usize;
    for chunk in all.chunks(a.batch) {
        let resp = client
            .create_entries(CreateEntriesRequest {
                entries: chunk.to_vec(),
            })
            .await
            .map_err(|s| {
                anyhow::anyhow!("CreateEntries refused: {} ({:?})", s.message(), s.code())
            })?
            .into_inner();
        for r in resp.results {
            match r.result {
                Some(entry_result::Result::Entry(_)) => created += 1,
                Some(entry_result::Result::Error(e)) => {
                    anyhow::bail!("the CA refused an entry: code {}: {}", e.code, e.message)
                }
                None => anyhow::bail!("the CA answered an entry with an empty result"),
            }
        }
    }
    let took = start.elapsed();
    println!(
        "created {created} entries in {:.2}s ({:.0} entries/s, {} per call)",
        took.as_secs_f64(),
        created as f64 / took.as_secs_f64().max(1e-9),
        a.batch
    );
    Ok(())
}

fn entry(a: &Args, i: u32) -> Entry {
    let uid = match (a.per_uid, a.bench_uid) {
        (Some(n), _) => UID_BASE + i / n.max(1),
        (None, Some(bench)) if i == 0 => bench,
        (None, _) => UID_BASE + i,
    };
    Entry {
        spiffe_id: format!("spiffe://{}/bench/w{i}", a.trust_domain),
        parent_id: a.parent_id.clone(),
        selectors: vec![Selector {
            r#type: "unix".into(),
            value: format!("uid:{uid}"),
        }],
        x509_svid_ttl_seconds: a.ttl,
        ..Entry::default()
    }
}

/// An admin API client on the CA's Unix socket.
pub async fn connect(path: &Path) -> anyhow::Result<AdminClient<Channel>> {
    let channel = meshid_runtime::uds::channel(path)
        .await
        .context("cannot reach the CA admin socket")?;
    Ok(AdminClient::new(channel)
        .max_decoding_message_size(meshid_proto::MAX_MESSAGE_SIZE)
        .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE))
}
