//! Agent scale benchmark: one agent serving many registration entries.
//!
//! Driven by `bench/agent-scale/run.sh`, which starts the real `meshid ca
//! serve` and `meshid agent run` processes. This binary does the parts
//! that need a client:
//!
//! - `entries`: creates the entries in batches through the CA admin socket;
//! - `measure`: watches the agent's and the CA's `/metrics` and the agent's
//!   `/proc/<pid>/status`, opens many Workload API streams at once, and
//!   prints a table (time to all SVIDs cached, RSS, first-message latency,
//!   rotation of every SVID);
//! - `key-rotation` (`MODE=key-rotation bench/agent-scale/run.sh`): prepares
//!   and activates a new CA key through the admin API and times until every
//!   SVID the agent serves is signed by it, watching with `watch` children
//!   (one per uid, run as that uid).
//!
//! `port` prints a free loopback port for the script.
//!
//! It is a benchmark, not a test: numbers depend on the machine.
#![forbid(unsafe_code)]

mod entries;
mod key_rotation;
mod measure;
mod metrics;
mod procfs;
mod report;
mod rounds;
mod streams;
mod watch;

use clap::Parser;

/// Benchmark commands.
#[derive(Debug, Parser)]
#[command(name = "meshid-bench-agent")]
enum Cli {
    /// Creates the benchmark's registration entries on a running CA.
    Entries(entries::Args),
    /// Measures a running agent until its SVIDs are issued and rotated.
    Measure(measure::Args),
    /// Rotates the CA's X.509 key and times the agent's re-issue.
    KeyRotation(key_rotation::Args),
    /// One Workload API stream, summarised per message (run by
    /// `key-rotation` as each entry uid).
    Watch(watch::Args),
    /// Prints a free TCP port on 127.0.0.1 (for run.sh).
    Port,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli {
        Cli::Entries(a) => rt.block_on(entries::run(a)),
        Cli::Measure(a) => rt.block_on(measure::run(a)),
        Cli::KeyRotation(a) => rt.block_on(key_rotation::run(a)),
        Cli::Watch(a) => rt.block_on(watch::run(a)),
        Cli::Port => {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            println!("{}", l.local_addr()?.port());
            Ok(())
        }
    }
}
