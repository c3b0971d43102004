//! `meshid`: the one binary of the meshid workload-identity system.
//!
//! Thin: parses flags and config, then calls the libraries.
#![forbid(unsafe_code)]
// Doc comments here are clap's --help text, where `<placeholder>` is literal.
#![allow(rustdoc::invalid_html_tags)]

mod admin_client;
mod cmd;
mod logging;
mod signal;

use clap::Parser;

/// jemalloc instead of glibc malloc. Measured with bench/agent-scale (2,000
/// Workload API streams opened and closed 5 times, 2 cores): under glibc the
/// agent's heap in use went back to 0.6 MB after each round (heaptrack), but
/// RSS stayed and grew, 15 -> 90 -> 117 -> 125 -> 133 -> 135 MB, because
/// glibc returns freed pages only from the top of each arena. jemalloc with
/// background purge threads and a 1 s decay (`.cargo/config.toml`) stays
/// flat: 17 MB before, 92-94 MB with the streams open, 28-29 MB 5 s after
/// they close, every round (bench/agent-scale/RESULTS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// meshid: SPIFFE workload identities — CA, node agent and mTLS proxy.
#[derive(Debug, Parser)]
#[command(name = "meshid", version, about, long_about = None)]
struct Cli {
    /// Log format: text or json.
    #[arg(long, global = true, env = "MESHID_LOG_FORMAT", default_value = "text")]
    log_format: logging::Format,
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(cmd::run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use tikv_jemalloc_ctl::{Access as _, AsName as _};

    #[test]
    fn allocator_is_jemalloc_purging_freed_pages_within_a_second() {
        let background = tikv_jemalloc_ctl::opt::background_thread::read();
        assert_eq!(background.ok(), Some(true), "background purge threads on");
        let decay = |name: &[u8]| name.name().read().ok();
        let dirty: Option<isize> = decay(b"arenas.dirty_decay_ms\0");
        let muzzy: Option<isize> = decay(b"arenas.muzzy_decay_ms\0");
        assert_eq!(dirty, Some(1000), "set in .cargo/config.toml");
        assert_eq!(muzzy, Some(0), "set in .cargo/config.toml");
    }
}
