//! A bounded pool of logged-in sessions on one token, so signatures run
//! concurrently (one session each: PKCS#11 sessions are not shared between
//! threads).
//!
//! Sessions are opened on demand up to the pool size and kept. A caller
//! waits at most [`SessionPool::wait`] for one. A call that fails marks
//! every session opened before it as suspect: they are closed instead of
//! reused, so the next call opens a fresh session and logs in again if the
//! token lost its login (logout, token reset, sessions closed under us).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error, RvError};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::{Pkcs11Error, describe};

/// Logged-in sessions on one token.
pub(super) struct SessionPool {
    ctx: Pkcs11,
    slot: Slot,
    token: String,
    pin: AuthPin,
    size: usize,
    wait: Duration,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    idle: Vec<(u64, Session)>,
    /// Sessions open (idle or leased).
    open: usize,
    /// Bumped by every failure; sessions of older generations are closed.
    generation: u64,
}

/// A session taken from the pool; given back on drop.
pub(super) struct Lease<'a> {
    pool: &'a SessionPool,
    session: Option<Session>,
    generation: u64,
}

// === impl SessionPool ===

impl SessionPool {
    /// A pool of at most `size` sessions; opens and logs in one session
    /// now, so a wrong PIN is reported at start-up.
    pub(super) fn open(
        ctx: Pkcs11,
        slot: Slot,
        token: String,
        pin: AuthPin,
        size: usize,
        wait: Duration,
    ) -> Result<Self, Pkcs11Error> {
        let pool = Self {
            ctx,
            slot,
            token,
            pin,
            size: size.max(1),
            wait,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                generation: 0,
            }),
            freed: Condvar::new(),
        };
        drop(pool.lease()?);
        Ok(pool)
    }

    /// The token's label.
    pub(super) fn token(&self) -> &str {
        &self.token
    }

    /// A session, waiting at most the pool's wait time for a free one.
    pub(super) fn lease(&self) -> Result<Lease<'_>, Pkcs11Error> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            let generation = state.generation;
            if let Some((g, session)) = state.idle.pop() {
                if g == generation {
                    return Ok(Lease {
                        pool: self,
                        session: Some(session),
                        generation,
                    });
                }
                // A session from before a failure: close it, look again.
                state.open = state.open.saturating_sub(1);
                drop(state);
                drop(session);
                state = self.lock();
                continue;
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match self.new_session() {
                    Ok(session) => Ok(Lease {
                        pool: self,
                        session: Some(session),
                        generation,
                    }),
                    Err(e) => {
                        let mut state = self.lock();
                        state.open = state.open.saturating_sub(1);
                        drop(state);
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Pkcs11Error::Busy {
                    token: self.token.clone(),
                    sessions: self.size,
                    waited: self.wait,
                });
            }
            state = self
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// A read-write session for creating or finding objects (not pooled).
    pub(super) fn rw_session(&self) -> Result<Session, Pkcs11Error> {
        let session = self
            .ctx
            .open_rw_session(self.slot)
            .map_err(|e| self.call("C_OpenSession", &e))?;
        self.login(&session)?;
        Ok(session)
    }

    fn new_session(&self) -> Result<Session, Pkcs11Error> {
        let session = self
            .ctx
            .open_ro_session(self.slot)
            .map_err(|e| self.call("C_OpenSession", &e))?;
        self.login(&session)?;
        Ok(session)
    }

    /// Logs the token in unless it already is (login state is shared by
    /// every session of this process on the token).
    fn login(&self, session: &Session) -> Result<(), Pkcs11Error> {
        let state = session
            .get_session_info()
            .map_err(|e| self.call("C_GetSessionInfo", &e))?
            .session_state();
        if matches!(state, SessionState::RoUser | SessionState::RwUser) {
            return Ok(());
        }
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(
                e @ Error::Pkcs11(
                    RvError::PinIncorrect
                    | RvError::PinLocked
                    | RvError::PinExpired
                    | RvError::PinLenRange,
                    _,
                ),
            ) => Err(Pkcs11Error::PinRejected {
                token: self.token.clone(),
                reason: describe(&e),
            }),
            Err(e) => Err(self.call("C_Login", &e)),
        }
    }

    fn call(&self, op: &'static str, e: &Error) -> Pkcs11Error {
        Pkcs11Error::Call {
            op,
            token: self.token.clone(),
            reason: describe(e),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

// === impl Lease ===

impl Lease<'_> {
    /// Runs `f` on the session. When it fails, this session and every idle
    /// one are closed rather than reused, and the error names `op`.
    pub(super) fn run<T>(
        &mut self,
        op: &'static str,
        f: impl FnOnce(&Session) -> cryptoki::error::Result<T>,
    ) -> Result<T, Pkcs11Error> {
        let result = match &self.session {
            Some(session) => f(session),
            None => Err(Error::InvalidValue),
        };
        result.map_err(|e| {
            let err = self.pool.call(op, &e);
            self.failed();
            err
        })
    }

    fn failed(&mut self) {
        let session = self.session.take();
        let stale = {
            let mut state = self.pool.lock();
            state.generation = state.generation.max(self.generation + 1);
            let closing = usize::from(session.is_some()) + state.idle.len();
            state.open = state.open.saturating_sub(closing);
            std::mem::take(&mut state.idle)
        };
        self.pool.freed.notify_all();
        drop(stale);
        drop(session);
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let mut state = self.pool.lock();
        if state.generation == self.generation {
            state.idle.push((self.generation, session));
            drop(state);
        } else {
            state.open = state.open.saturating_sub(1);
            drop(state);
            drop(session);
        }
        self.pool.freed.notify_one();
    }
}
