//! `meshid`: the one binary of the meshid workload-identity system.
//!
//! Thin: parses flags and config, then calls the libraries.
#![forbid(unsafe_code)]

mod admin_client;
mod cmd;
mod logging;
mod signal;

use clap::Parser;

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
