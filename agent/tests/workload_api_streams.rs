//! Many Workload API streams at once: every caller gets its SVID, and a
//! closed stream leaves nothing behind on the server (the class of leak
//! that would make the agent's memory grow with each burst of clients).

#![allow(clippy::unwrap_used)]

#[path = "workload_api/fixture.rs"]
mod fixture;
#[path = "workload_api/harness.rs"]
mod harness;

use std::time::Duration;

use fixture::{Pki, my_entry};
use harness::{Agent, client, next_message, x509_stream};

/// Streams opened at once (bounded: one connection and two descriptors
/// each on a test machine).
const STREAMS: usize = 64;
/// How long the server may take to notice the clients went away.
const RELEASE_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_are_served_and_release_their_state_when_closed() {
    let pki = Pki::new("example.org");
    let svid = pki.fresh_svid(my_entry("e1", "spiffe://example.org/api"));
    let leaf = svid.chain[0].as_ref().to_vec();
    let agent = Agent::start(pki.snapshot(vec![svid], 1)).await;
    let idle = agent.receivers();

    for round in 0..2 {
        let opened = futures::future::join_all((0..STREAMS).map(|_| async {
            let mut c = client(&agent.socket).await;
            let mut s = x509_stream(&mut c).await;
            let first = next_message(&mut s).await;
            (c, s, first)
        }))
        .await;
        for (_, _, first) in &opened {
            assert_eq!(first.svids.len(), 1, "round {round}");
            assert_eq!(first.svids[0].x509_svid, leaf, "round {round}");
        }
        assert!(
            agent.receivers() >= idle + STREAMS,
            "round {round}: every open stream watches the snapshots ({} receivers, {idle} idle)",
            agent.receivers()
        );

        drop(opened);
        let what = format!(
            "round {round}: snapshot receivers back to {idle} (idle) after every client closed"
        );
        meshid_tests::eventually_async(&what, RELEASE_WITHIN, || async {
            (agent.receivers() <= idle).then_some(())
        })
        .await;
    }
}
