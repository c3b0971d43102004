//! The CA in process, as the CA's integration tests start it: node API and
//! ops endpoint on `127.0.0.1:0`, state (SQLite, keys, admin socket) in a
//! temp dir. Include with `#[path = "support/server.rs"] mod server;`.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;

use meshid_ca::config::CaConfig;
use meshid_ca::server::CaServer;

/// The trust domain of every in-process CA here.
pub const TD: &str = "example.org";

/// The config of a CA for [`TD`] on loopback keeping its state in
/// `data_dir`; change fields with `CaConfig { admin_ids, ..config(dir) }`.
pub fn config(data_dir: &Path) -> CaConfig {
    CaConfig {
        trust_domain: Some(TD.parse().unwrap()),
        data_dir: Some(data_dir.to_path_buf()),
        listen: "127.0.0.1:0".parse().unwrap(),
        ops_listen: "127.0.0.1:0".parse().unwrap(),
        ..CaConfig::default()
    }
}

/// Validates `cfg` and starts the CA.
pub async fn start(cfg: CaConfig) -> CaServer {
    CaServer::start(cfg.validate().unwrap()).await.unwrap()
}
