//! A fresh PostgreSQL database for one end-to-end test, on the server
//! `MESHID_TEST_POSTGRES_URL` names (a role that may `CREATE DATABASE`;
//! `scripts/postgres-test-server start` prints one), made and queried with
//! the real `psql` CLI. Without it the test fails when `CI` is set and
//! otherwise prints a loud note and passes.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Cmd;

/// One database, dropped (connections closed) when this drops.
#[derive(Debug)]
pub struct Database {
    /// Its URL, for a CA's `store = ...`.
    pub url: String,
    server: String,
    name: String,
}

impl Database {
    /// A new, empty database; `None` when there is no server (outside CI).
    pub fn fresh(test: &str) -> Option<Self> {
        let Ok(server) = std::env::var("MESHID_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "MESHID_TEST_POSTGRES_URL is not set, so {test} cannot run; start a server with \
                 `scripts/postgres-test-server start` and export the URL it prints"
            );
            eprintln!(
                "\n!!!!!!!!!! NOTE: {test} NOT run: set MESHID_TEST_POSTGRES_URL \
                 (scripts/postgres-test-server start) !!!!!!!!!!\n"
            );
            return None;
        };
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "e2e_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        psql(&server, &format!("CREATE DATABASE {name}"));
        let (head, query) = server.split_once('?').unwrap_or((&server, ""));
        let authority_end = head
            .find("://")
            .map(|i| i + 3)
            .unwrap_or_else(|| panic!("MESHID_TEST_POSTGRES_URL is not a URL: {server}"));
        let base = match head[authority_end..].find('/') {
            Some(slash) => &head[..authority_end + slash],
            None => head,
        };
        let url = match query {
            "" => format!("{base}/{name}"),
            q => format!("{base}/{name}?{q}"),
        };
        Some(Self { url, server, name })
    }

    /// The issuance records of the certificate with serial `serial`
    /// (lowercase hex): the signing key (`ca_key_id`, empty if none was
    /// recorded) of each.
    pub fn issuance_records(&self, serial: &str) -> Vec<String> {
        psql(&self.url, &crate::certs::issuance_query(serial))
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Cmd::new("psql")
            .args([&self.server, "-qtAc"])
            .args([format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )])
            .output();
    }
}

/// `psql <url> -tAc <sql>`, which must succeed; its stdout.
fn psql(url: &str, sql: &str) -> String {
    Cmd::new("psql").args([url, "-qtAc", sql]).run_ok()
}
