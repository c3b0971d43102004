//! The client's TLS session cache: a few sessions per caller-chosen key
//! (e.g. the peer's address), bounded in keys and sessions per key.
//!
//! Sessions arrive through the context's new-session callback and only
//! from that context, which is what makes [`SessionCache::resume`]'s one
//! `unsafe` call sound.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslRef, SslSession, SslVersion};

use super::OpensslError;

/// How many keys (peers) the cache remembers.
const MAX_KEYS: usize = 256;
/// How many sessions it keeps per key (TLS 1.3 tickets are used once).
const MAX_PER_KEY: usize = 4;
/// The longest session key stored; longer keys are not cached.
const MAX_KEY_LEN: usize = 512;

/// Sessions by key, for one client context.
#[derive(Default)]
pub(crate) struct SessionCache {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<String, Entry>,
    tick: u64,
}

struct Entry {
    sessions: VecDeque<SslSession>,
    used: u64,
}

/// The key a connection's sessions are filed under, kept on its `Ssl`.
#[derive(Debug, Clone)]
struct SessionKey(String);

static KEY_INDEX: OnceLock<Result<Index<Ssl, SessionKey>, OpensslError>> = OnceLock::new();

fn key_index() -> Result<Index<Ssl, SessionKey>, OpensslError> {
    KEY_INDEX
        .get_or_init(|| Ssl::new_ex_index().map_err(OpensslError::new("allocate an ex_data index")))
        .clone()
}

// === impl SessionCache ===

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("keys", &self.lock().by_key.len())
            .finish()
    }
}

impl SessionCache {
    /// Files a new session the server sent on `ssl` under its key.
    pub(crate) fn store(&self, ssl: &SslRef, session: SslSession) {
        let Ok(index) = key_index() else { return };
        let Some(SessionKey(key)) = ssl.ex_data(index) else {
            return;
        };
        let mut e = self.lock();
        e.tick += 1;
        let tick = e.tick;
        if !e.by_key.contains_key(key) && e.by_key.len() >= MAX_KEYS {
            let oldest = e
                .by_key
                .iter()
                .min_by_key(|(_, v)| v.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                e.by_key.remove(&k);
            }
        }
        let entry = e.by_key.entry(key.clone()).or_insert_with(|| Entry {
            sessions: VecDeque::new(),
            used: tick,
        });
        entry.used = tick;
        if entry.sessions.len() >= MAX_PER_KEY {
            entry.sessions.pop_front();
        }
        entry.sessions.push_back(session);
    }

    /// Tags `ssl` with `key` and offers it the newest session filed under
    /// `key`. TLS 1.3 sessions are taken (a ticket is used once); TLS 1.2
    /// sessions stay for the next connection.
    #[allow(unsafe_code)]
    pub(crate) fn resume(&self, ssl: &mut SslRef, key: &str) -> Result<(), OpensslError> {
        if key.len() > MAX_KEY_LEN {
            return Ok(());
        }
        ssl.set_ex_data(key_index()?, SessionKey(key.to_owned()));
        let session = {
            let mut e = self.lock();
            e.tick += 1;
            let tick = e.tick;
            let Some(entry) = e.by_key.get_mut(key) else {
                return Ok(());
            };
            entry.used = tick;
            match entry.sessions.back() {
                Some(s) if s.protocol_version() == SslVersion::TLS1_2 => s.clone(),
                Some(_) => match entry.sessions.pop_back() {
                    Some(s) => s,
                    None => return Ok(()),
                },
                None => return Ok(()),
            }
        };
        // SAFETY: every session in this cache came from the new-session
        // callback of the one SslContext that owns the cache, and `ssl` was
        // made from that same context (ClientContext::ssl), as
        // SSL_set_session requires.
        unsafe { ssl.set_session(&session) }.map_err(OpensslError::new("offer a cached session"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A shared cache, for the context's callback and the context itself.
pub(crate) type SharedSessions = Arc<SessionCache>;
