//! A server stream driven by the snapshot channel: the full state first,
//! then a new message whenever the caller's view changes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::{Caller, ShutdownSignal, View};
use crate::cache::{CachedSvid, Snapshot};
use meshid_runtime::clock::SharedClock;

/// Shortest wait before re-checking expiry, so a clock that does not move
/// (or jumps) cannot make the loop spin.
const MIN_RECHECK: Duration = Duration::from_millis(200);

/// Builds one message from a snapshot for the caller's SVIDs (its
/// [`View`]); all a message may depend on is that view.
pub(crate) type Build<T> =
    Box<dyn FnMut(&Snapshot, &[Arc<CachedSvid>]) -> Result<T, Status> + Send>;

/// Sends the caller's message now and again whenever its view changes: on
/// a snapshot change (or expiry) the caller's [`View`] is compared with the
/// one of its last message, and only a changed view is built and, if the
/// message differs from the last one, sent. Ends on the first error (sent
/// to the client), when the client goes away, when the server stops, or
/// when the snapshot channel closes.
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
    let mut view = View::of(&snap, &caller.selectors, clock.now())?;
    let first = build(&snap, view.svids())?;
    caller.still_same()?;
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        if tx.send(Ok(first.clone())).await.is_err() {
            return;
        }
        let mut last = first;
        loop {
            let pause = view.next_expiry().map(|t| {
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
            let built = View::of(&snap, &caller.selectors, clock.now()).and_then(|next| {
                if next.same_as(&view) {
                    return Ok(None);
                }
                let msg = build(&snap, next.svids())?;
                view = next;
                Ok(Some(msg))
            });
            let msg = match built {
                Ok(Some(msg)) if msg != last => msg,
                Ok(_) => continue,
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    break;
                }
            };
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

#[cfg(test)]
mod tests;
