//! The client's TLS session cache: a few sessions per caller-chosen key
//! (e.g. the peer's address), bounded in keys and sessions per key.
//!
//! Sessions arrive through the context's new-session callback and only
//! from that context, which is what makes [`SessionCache::resume`]'s one
//! `unsafe` call sound. Each keeps the server chain it was made with; a
//! session is offered only while that chain passes the connection's
//! [`PeerCheck`] (and [`connect`](super::connect) checks it again).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslRef, SslSession, SslVersion};
use rustls_pki_types::CertificateDer;

use super::OpensslError;
use crate::tls::PeerCheck;

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
    sessions: VecDeque<Cached>,
    used: u64,
}

/// A session and the server chain it was established with.
struct Cached {
    session: SslSession,
    peer: Vec<CertificateDer<'static>>,
}

/// The key a connection's sessions are filed under, kept on its `Ssl`.
#[derive(Debug, Clone)]
struct SessionKey(String);

/// The server chain of the session offered to a connection, kept on its
/// `Ssl`: a session restored from its DER form carries only the server's
/// leaf, so a resumed connection's chain is this one.
#[derive(Debug, Clone)]
struct OfferedChain(Vec<CertificateDer<'static>>);

static KEY_INDEX: OnceLock<Result<Index<Ssl, SessionKey>, OpensslError>> = OnceLock::new();
static CHAIN_INDEX: OnceLock<Result<Index<Ssl, OfferedChain>, OpensslError>> = OnceLock::new();

fn key_index() -> Result<Index<Ssl, SessionKey>, OpensslError> {
    KEY_INDEX
        .get_or_init(|| Ssl::new_ex_index().map_err(OpensslError::new("allocate an ex_data index")))
        .clone()
}

fn chain_index() -> Result<Index<Ssl, OfferedChain>, OpensslError> {
    CHAIN_INDEX
        .get_or_init(|| Ssl::new_ex_index().map_err(OpensslError::new("allocate an ex_data index")))
        .clone()
}

/// The server chain of the cached session offered on `ssl`, if one was.
pub(crate) fn offered_chain(ssl: &SslRef) -> Option<&[CertificateDer<'static>]> {
    let index = chain_index().ok()?;
    ssl.ex_data(index).map(|c| c.0.as_slice())
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
    ///
    /// The cache keeps a copy made through the session's DER form, not the
    /// connection's own session object: OpenSSL marks that one
    /// unresumable when the connection is freed without a close_notify (a
    /// dropped pooled connection), which rustls's cache does not do.
    pub(crate) fn store(&self, ssl: &SslRef, session: SslSession) {
        let Ok(index) = key_index() else { return };
        let Some(SessionKey(key)) = ssl.ex_data(index) else {
            return;
        };
        let Ok(session) = session.to_der().and_then(|der| SslSession::from_der(&der)) else {
            return;
        };
        let peer = super::peer_chain(ssl);
        if peer.is_empty() {
            return;
        }
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
        entry.sessions.push_back(Cached { session, peer });
    }

    /// Tags `ssl` with `key` and offers it the newest session filed under
    /// `key` whose server chain still passes `check` (a session whose
    /// server no longer would, e.g. its certificate expired, is dropped, so
    /// the connection makes a full handshake instead of failing). TLS 1.3
    /// sessions are taken (a ticket is used once); TLS 1.2 sessions stay
    /// for the next connection.
    #[allow(unsafe_code)]
    pub(crate) fn resume(
        &self,
        ssl: &mut SslRef,
        key: &str,
        check: &PeerCheck,
    ) -> Result<(), OpensslError> {
        if key.len() > MAX_KEY_LEN {
            return Ok(());
        }
        ssl.set_ex_data(key_index()?, SessionKey(key.to_owned()));
        let Some((session, chain)) = self.take(key, check) else {
            return Ok(());
        };
        ssl.set_ex_data(chain_index()?, OfferedChain(chain));
        // SAFETY: every session in this cache is a copy of one that the
        // new-session callback of the one SslContext owning the cache
        // received, and `ssl` was made from that same context
        // (ClientContext::ssl), as SSL_set_session requires.
        unsafe { ssl.set_session(&session) }.map_err(OpensslError::new("offer a cached session"))
    }

    /// The newest usable session under `key` and its server chain,
    /// dropping the unusable ones.
    fn take(
        &self,
        key: &str,
        check: &PeerCheck,
    ) -> Option<(SslSession, Vec<CertificateDer<'static>>)> {
        let mut e = self.lock();
        e.tick += 1;
        let tick = e.tick;
        let entry = e.by_key.get_mut(key)?;
        entry.used = tick;
        while let Some(newest) = entry.sessions.back() {
            if check.check(&newest.peer).is_err() {
                entry.sessions.pop_back();
                continue;
            }
            if newest.session.protocol_version() == SslVersion::TLS1_2 {
                return Some((newest.session.clone(), newest.peer.clone()));
            }
            return entry.sessions.pop_back().map(|c| (c.session, c.peer));
        }
        None
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A shared cache, for the context's callback and the context itself.
pub(crate) type SharedSessions = Arc<SessionCache>;
