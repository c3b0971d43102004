//! The leader election's decision on a read Lease (client-go's rules,
//! measured on the candidate's own clock).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use meshid_k8s::leader::{Decision, Observed, State};
use tokio::time::Instant;

fn seen(holder: &str, rv: &str) -> Observed {
    Observed {
        holder: holder.into(),
        resource_version: rv.into(),
    }
}

const LEASE: Duration = Duration::from_secs(15);

#[test]
fn own_lease_is_renewed_and_a_free_one_taken() {
    let mut s = State::default();
    let t0 = Instant::now();
    assert_eq!(s.decide("a", seen("a", "1"), t0, LEASE), Decision::Renew);
    assert_eq!(s.decide("a", seen("", "2"), t0, LEASE), Decision::Acquire);
}

#[test]
fn another_holder_is_followed_until_its_record_stops_changing_for_a_lease_duration() {
    let mut s = State::default();
    let t0 = Instant::now();
    assert_eq!(s.decide("b", seen("a", "1"), t0, LEASE), Decision::Follow);
    // Renewed (new resourceVersion): the clock starts again.
    let t1 = t0 + Duration::from_secs(10);
    assert_eq!(s.decide("b", seen("a", "2"), t1, LEASE), Decision::Follow);
    let t2 = t1 + Duration::from_secs(14);
    assert_eq!(s.decide("b", seen("a", "2"), t2, LEASE), Decision::Follow);
    // Unchanged for a full lease duration since first seen: expired.
    let t3 = t1 + LEASE;
    assert_eq!(s.decide("b", seen("a", "2"), t3, LEASE), Decision::Acquire);
}
