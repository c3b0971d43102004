//! Watches: newline-delimited watch events streamed from the store's
//! history and its live changes, with bookmarks, a timeout, `410 Expired`
//! when the resourceVersion is older than the history, and an end when the
//! test breaks every watch.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use super::resources::Resource;
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Event, EventType, Store};

/// How often an idle watch that asked for bookmarks gets one.
pub const BOOKMARK_EVERY: Duration = Duration::from_secs(1);

/// The longest `timeoutSeconds` honoured (the real server's default cap).
const MAX_TIMEOUT: Duration = Duration::from_secs(1800);

/// Lines buffered for a slow client.
const BUFFER: usize = 256;

/// What one watch request asked for.
#[derive(Debug)]
pub struct WatchSpec {
    /// The resource watched.
    pub resource: &'static Resource,
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `resourceVersion`; `None` (absent or `0`): start with the current
    /// objects as `ADDED`.
    pub rv: Option<u64>,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// Objects as `PartialObjectMetadata`.
    pub metadata_only: bool,
    /// `sendInitialEvents=true`: the current objects, then a bookmark
    /// annotated `k8s.io/initial-events-end`.
    pub initial_events: bool,
    /// `timeoutSeconds` (capped).
    pub timeout: Option<Duration>,
}

impl WatchSpec {
    fn selects(&self, obj: &Value) -> bool {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.namespace.as_deref().is_none_or(|want| want == ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    /// The event this watch sees for a change, if any: a change that makes
    /// an object match is `ADDED`, one that makes it stop matching is
    /// `DELETED`, as the real server filters.
    fn view(&self, e: &Event) -> Option<(EventType, Value)> {
        if e.resource != self.resource {
            return None;
        }
        let now = self.selects(&e.object);
        let before = e.old.as_ref().is_some_and(|o| self.selects(o));
        let kind = match (e.kind, before, now) {
            (EventType::Deleted, true, _) => EventType::Deleted,
            (EventType::Deleted, false, _) => return None,
            (EventType::Added, _, true) => EventType::Added,
            (EventType::Modified, true, true) => EventType::Modified,
            (EventType::Modified, false, true) => EventType::Added,
            (EventType::Modified, true, false) => EventType::Deleted,
            _ => return None,
        };
        Some((kind, self.shape(&e.object)))
    }

    fn shape(&self, obj: &Value) -> Value {
        if self.metadata_only {
            super::verbs::partial(obj)
        } else {
            obj.clone()
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            "BOOKMARK",
            &json!({"apiVersion": self.resource.api_version(), "kind": self.resource.kind, "metadata": metadata}),
        )
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// The `ERROR` event a watch ends with when it cannot resume.
fn expired(rv: u64, oldest: u64) -> Bytes {
    line(
        "ERROR",
        &ApiError::expired(format!("too old resource version: {rv} ({oldest})")).to_status(),
    )
}

/// Starts a watch on `store` (locked by the caller, so no change is missed
/// between the snapshot and the live stream); the lines arrive on the
/// returned receiver until the watch ends.
pub fn start(
    store: &Store,
    spec: WatchSpec,
    mut stop: watch::Receiver<u64>,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut first: Vec<Bytes> = Vec::new();
    let from = match spec.rv {
        Some(rv) if !spec.initial_events => rv,
        _ => {
            for obj in store.list(spec.resource, spec.namespace.as_deref(), None) {
                if spec.selects(obj) {
                    first.push(line("ADDED", &spec.shape(obj)));
                }
            }
            if spec.initial_events {
                first.push(spec.bookmark(store.rv(), true));
            }
            store.rv()
        }
    };
    let Some((past, mut live)) = store.follow(from) else {
        let _ = tx.try_send(expired(from, store.oldest()));
        return rx;
    };
    let mut last = from;
    for e in &past {
        last = last.max(e.rv);
        if let Some((kind, obj)) = spec.view(e) {
            first.push(line(kind.as_str(), &obj));
        }
    }
    let timeout = spec.timeout.unwrap_or(MAX_TIMEOUT).min(MAX_TIMEOUT);
    stop.mark_unchanged();
    tokio::spawn(async move {
        for l in first {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            let out = tokio::select! {
                biased;
                _ = stop.changed() => return,
                () = tx.closed() => return,
                () = &mut deadline => {
                    if spec.bookmarks {
                        let _ = tx.send(spec.bookmark(last, false)).await;
                    }
                    return;
                }
                _ = tick.tick(), if spec.bookmarks => spec.bookmark(last, false),
                e = live.recv() => match e {
                    Ok(e) if e.rv <= last => continue,
                    Ok(e) => {
                        last = e.rv;
                        match spec.view(&e) {
                            Some((kind, obj)) => line(kind.as_str(), &obj),
                            None => continue,
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(expired(last, last + 1)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if tx.send(out).await.is_err() {
                return;
            }
        }
    });
    rx
}
