//! The running CA serves its store through `MeteredStore`: store calls show
//! up on `/metrics` by operation, and a scrape never counts rows.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use meshid_ca::config::CaConfig;
use meshid_ca::server::CaServer;
use meshid_ca::store::{self, NewEntry, StoreError, StoreUrl};
use meshid_identity::{Selector, SpiffeId, TrustDomain};

fn id(path: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://example.org{path}")).unwrap()
}

fn entry(path: &str) -> NewEntry {
    NewEntry::new(
        id(path),
        id("/node"),
        vec![Selector::parse("unix:uid:1").unwrap()],
    )
}

/// The value of the sample line that starts with `name` (`None` if absent).
fn sample(text: &str, name: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    line.rsplit(' ').next()?.parse().ok()
}

#[tokio::test]
async fn store_calls_are_metered_and_scrapes_do_not_count_rows() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = CaConfig {
        trust_domain: Some(TrustDomain::new("example.org").unwrap()),
        data_dir: Some(dir.path().join("ca")),
        listen: "127.0.0.1:0".parse().unwrap(),
        ops_listen: "127.0.0.1:0".parse().unwrap(),
        ..CaConfig::default()
    };
    let cfg = cfg.validate().unwrap();
    // An entry written before this CA started (as by another replica).
    let before = store::open(&StoreUrl::sqlite_file(&dir.path().join("ca/ca.db")))
        .await
        .unwrap();
    before.create_entry(entry("/before")).await.unwrap();
    drop(before);

    let ca = CaServer::start(cfg).await.unwrap();
    // The row counts are read at start, in the background: wait for them.
    for _ in 0..500 {
        if sample(&ca.metrics.encode(), "meshid_ca_entries ") == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = ca.metrics.encode();
    assert_eq!(sample(&text, "meshid_ca_entries "), Some(1.0), "{text}");
    let counted = "meshid_ca_store_call_duration_seconds_count{op=\"count_entries\"}";
    let counts_at_start = sample(&text, counted).unwrap();
    // Start-up published the trust bundle through the metered store.
    let published = "meshid_ca_store_call_duration_seconds_count{op=\"put_bundle\"}";
    assert!(sample(&text, published).unwrap() >= 1.0, "{text}");

    ca.store.create_entry(entry("/api")).await.unwrap();
    let missing = ca.store.delete_entry("no-such-entry").await.unwrap_err();
    assert!(
        matches!(missing, StoreError::NotFound { .. }),
        "{missing:?}"
    );

    let url = format!("http://{}/metrics", ca.ops_addr);
    for _ in 0..3 {
        meshid_runtime::ops::probe(&url, Duration::from_secs(5))
            .await
            .unwrap();
    }
    let text = ca.metrics.encode();
    // This CA's write moved the gauge; the scrapes counted nothing.
    assert_eq!(sample(&text, "meshid_ca_entries "), Some(2.0), "{text}");
    assert_eq!(sample(&text, counted), Some(counts_at_start), "{text}");
    let failed = "meshid_ca_store_call_errors_total{op=\"delete_entry\",kind=\"not_found\"}";
    assert_eq!(sample(&text, failed), Some(1.0), "{text}");
    ca.shutdown().await.unwrap();
}
