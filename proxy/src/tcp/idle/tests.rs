//! The idle splice on in-memory pipes with paused time: no sleeps, no
//! sockets.
#![allow(clippy::unwrap_used)]

use super::{End, Spliced, splice};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

const IDLE: Duration = Duration::from_secs(10);

#[tokio::test(start_paused = true)]
async fn a_silent_connection_ends_after_the_idle_timeout() {
    let (_client, mut a) = duplex(64);
    let (mut b, _upstream) = duplex(64);
    let started = tokio::time::Instant::now();
    let r = splice(&mut a, &mut b, IDLE).await;
    assert_eq!(r.end, End::Idle);
    assert_eq!((r.from_client, r.from_upstream), (0, 0));
    assert!(started.elapsed() >= IDLE && started.elapsed() < IDLE * 2);
}

#[tokio::test(start_paused = true)]
async fn traffic_one_way_keeps_it_open_and_the_bytes_are_counted() {
    let (mut client, mut a) = duplex(64);
    let (mut b, mut upstream) = duplex(64);
    // The upstream streams a byte every half timeout, 6 times (three
    // timeouts in all), then goes silent; the client never writes.
    let stream = async {
        let mut got = Vec::new();
        for _ in 0..6 {
            upstream.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            client.read_exact(&mut byte).await.unwrap();
            got.push(byte[0]);
            tokio::time::sleep(IDLE / 2).await;
        }
        (got, client, upstream)
    };
    let started = tokio::time::Instant::now();
    let (r, (got, _client, _upstream)) = tokio::join!(splice(&mut a, &mut b, IDLE), stream);
    assert_eq!(got, b"xxxxxx");
    assert_eq!(
        r,
        Spliced {
            from_client: 0,
            from_upstream: 6,
            end: End::Idle
        }
    );
    assert!(started.elapsed() >= IDLE * 3, "{:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn both_sides_closing_ends_it_before_the_timeout() {
    let (mut client, mut a) = duplex(64);
    let (mut b, mut upstream) = duplex(64);
    let peers = async {
        client.write_all(b"ping").await.unwrap();
        client.shutdown().await.unwrap();
        let mut buf = [0u8; 4];
        upstream.read_exact(&mut buf).await.unwrap();
        upstream.write_all(b"pong!").await.unwrap();
        upstream.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        back
    };
    let started = tokio::time::Instant::now();
    let (r, back) = tokio::join!(splice(&mut a, &mut b, IDLE), peers);
    assert_eq!(back, b"pong!");
    assert_eq!(
        r,
        Spliced {
            from_client: 4,
            from_upstream: 5,
            end: End::Closed
        }
    );
    assert!(started.elapsed() < IDLE);
}
