//! A server stream driven by the snapshot channel: the full state first,
//! then a new message whenever the caller's view changes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::{Caller, ShutdownSignal};
use crate::cache::Snapshot;
use crate::clock::SharedClock;

/// Shortest wait before re-checking expiry, so a clock that does not move
/// (or jumps) cannot make the loop spin.
const MIN_RECHECK: Duration = Duration::from_millis(200);

/// Builds one message from a snapshot at a time: the message and the time
/// at which it would change by expiry alone (the earliest `not_after`).
pub(crate) type Build<T> =
    Box<dyn FnMut(&Snapshot, SystemTime) -> Result<(T, Option<SystemTime>), Status> + Send>;

/// Runs `build` now and after every snapshot change (or expiry), sending
/// each message that differs from the last one. Ends on the first error
/// (sent to the client), when the client goes away, when the server stops,
/// or when the snapshot channel closes.
pub(crate) fn watch_stream<T>(
    caller: Caller,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    clock: SharedClock,
    mut stop: ShutdownSignal,
    mut build: Build<T>,
) -> Result<ReceiverStream<Result<T, Status>>, Status>
where
    T: PartialEq + Clone + Send + 'static,
{
    let snap = snapshots.borrow_and_update().clone();
    let (first, mut wake) = build(&snap, clock.now())?;
    caller.still_same()?;
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        if tx.send(Ok(first.clone())).await.is_err() {
            return;
        }
        let mut last = first;
        loop {
            let pause = wake.map(|t| {
                t.duration_since(clock.now())
                    .unwrap_or_default()
                    .max(MIN_RECHECK)
            });
            tokio::select! {
                changed = snapshots.changed() => if changed.is_err() { break },
                () = tx.closed() => break,
                () = stop.stopped() => break,
                () = sleep_opt(pause) => {}
            }
            let snap = snapshots.borrow_and_update().clone();
            let msg = match build(&snap, clock.now()) {
                Ok((msg, next)) => {
                    wake = next;
                    msg
                }
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    break;
                }
            };
            if msg == last {
                continue;
            }
            if let Err(status) = caller.still_same() {
                let _ = tx.send(Err(status)).await;
                break;
            }
            if tx.send(Ok(msg.clone())).await.is_err() {
                break;
            }
            last = msg;
        }
    });
    Ok(ReceiverStream::new(rx))
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
