//! The bounded cache of Kubernetes answers: at most [`MAX_ENTRIES`], each
//! for [`TTL`] by the clock, keyed by a SHA-256 digest (a bearer token is
//! never kept, only its hash).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use meshid_runtime::clock::SharedClock;
use sha2::{Digest, Sha256};

/// How long an answer is reused.
pub const TTL: Duration = Duration::from_secs(60);
/// Most answers kept; past it, expired ones are dropped, then the oldest.
pub const MAX_ENTRIES: usize = 1000;

/// A cache key: the SHA-256 of the question.
pub type Key = [u8; 32];

/// The key of a question made of `parts`, each length-prefixed so no two
/// different questions share a key.
pub fn key(parts: &[&str]) -> Key {
    let mut h = Sha256::new();
    for p in parts {
        h.update(u64::try_from(p.len()).unwrap_or(u64::MAX).to_be_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// Answers of type `V` by question.
#[derive(Debug)]
pub struct Cache<V> {
    clock: SharedClock,
    ttl: Duration,
    entries: Mutex<HashMap<Key, (SystemTime, V)>>,
}

impl<V: Clone> Cache<V> {
    /// An empty cache keeping answers for `ttl` by `clock`.
    pub fn new(clock: SharedClock, ttl: Duration) -> Self {
        Self {
            clock,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The answer to `key` if it is younger than the TTL.
    pub fn get(&self, key: &Key) -> Option<V> {
        let now = self.clock.now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(key) {
            Some((at, v)) if fresh(*at, now, self.ttl) => Some(v.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` as the answer to `key`, making room when full.
    pub fn put(&self, key: Key, value: V) {
        let now = self.clock.now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, (at, _)| fresh(*at, now, self.ttl));
            if entries.len() >= MAX_ENTRIES
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| *k)
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (now, value));
    }

    /// How many answers are kept (expired ones included until dropped).
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// An answer stored at `at` is still good at `now` (a clock that went back
/// keeps it until it has moved forward again by the TTL).
fn fresh(at: SystemTime, now: SystemTime, ttl: Duration) -> bool {
    now.duration_since(at).map_or(true, |age| age < ttl)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use meshid_runtime::clock::ManualClock;

    use super::*;

    #[test]
    fn answers_expire_and_the_cache_stays_bounded() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let cache = Cache::new(Arc::new(clock.clone()), TTL);
        cache.put(key(&["a"]), 1);
        assert_eq!(cache.get(&key(&["a"])), Some(1));
        clock.advance(TTL);
        assert_eq!(cache.get(&key(&["a"])), None);

        for i in 0..MAX_ENTRIES + 10 {
            cache.put(key(&[&i.to_string()]), i);
            clock.advance(Duration::from_millis(1));
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        // The oldest went first.
        assert_eq!(cache.get(&key(&["0"])), None);
        assert_eq!(
            cache.get(&key(&[&(MAX_ENTRIES + 9).to_string()])),
            Some(MAX_ENTRIES + 9)
        );
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
    }
}
