//! Continuous JWT-SVID checks for the rotation scenarios: one thread
//! fetches a JWT-SVID from the agent's Workload API again and again and
//! validates each one twice: against the JWT bundle it fetched from the
//! agent up to [`BUNDLE_EVERY`] earlier (a relying party's cache: a key
//! that signs before it was published fails here), and through the agent's
//! `ValidateJWTSVID`. Counts by signing key and failures by reason.
//! Bounded as [`Load`](crate::load::Load).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use meshid_identity::{BundleSet, TrustBundle};

use crate::load::{MAX_REQUESTS, MAX_RUN};
use crate::workload_client::{fetch_jwt, jwt_bundles, validate_jwt};

/// How old the cached JWT bundle may get before it is fetched again.
pub const BUNDLE_EVERY: Duration = Duration::from_secs(2);
/// The pause between two checks.
const PAUSE: Duration = Duration::from_millis(50);

/// What the checks saw so far.
#[derive(Clone, Debug, Default)]
pub struct JwtTally {
    /// Tokens that validated both ways, by the `kid` that signed them.
    pub ok_by_key: BTreeMap<String, u64>,
    /// Failed checks by reason.
    pub failed: BTreeMap<String, u64>,
}

/// The running check thread.
#[derive(Debug)]
pub struct JwtLoad {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<JwtTally>>,
    thread: JoinHandle<()>,
}

// === impl JwtLoad ===

impl JwtLoad {
    /// Starts checking JWT-SVIDs for `audience` from the agent at `socket`.
    pub fn start(socket: &Path, audience: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(JwtTally::default()));
        let (socket, audience) = (socket.to_owned(), audience.to_owned());
        let thread = {
            let (stop, tally) = (stop.clone(), tally.clone());
            std::thread::spawn(move || run(&socket, &audience, &stop, &tally))
        };
        Self {
            stop,
            tally,
            thread,
        }
    }

    /// A copy of what was seen so far.
    pub fn tally(&self) -> JwtTally {
        self.tally.lock().unwrap_or_else(|e| panic!("{e}")).clone()
    }

    /// Stops the thread and prints the counts.
    pub fn stop(self) -> JwtTally {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|_| panic!("the JWT check thread panicked"));
        let tally = self.tally.lock().unwrap_or_else(|e| panic!("{e}")).clone();
        eprintln!("{tally}");
        tally
    }
}

fn run(socket: &Path, audience: &str, stop: &AtomicBool, tally: &Mutex<JwtTally>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a runtime for the JWT checks: {e}"));
    let started = Instant::now();
    let mut cached: Option<(BundleSet, Instant)> = None;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && n < MAX_REQUESTS && started.elapsed() < MAX_RUN {
        if cached
            .as_ref()
            .is_none_or(|(_, at)| at.elapsed() >= BUNDLE_EVERY)
            && let Some(b) = rt.block_on(jwt_bundles(socket))
        {
            cached = Some((b, Instant::now()));
        }
        let outcome = match &cached {
            None => Err("no JWT bundle from the agent".to_owned()),
            Some((bundles, _)) => rt.block_on(check(socket, audience, bundles)),
        };
        let mut t = tally.lock().unwrap_or_else(|e| panic!("{e}"));
        match outcome {
            Ok(kid) => *t.ok_by_key.entry(kid).or_default() += 1,
            Err(reason) => *t.failed.entry(reason).or_default() += 1,
        }
        drop(t);
        n += 1;
        std::thread::sleep(PAUSE);
    }
}

/// Fetches one JWT-SVID and validates it both ways; the `kid` that signed it.
async fn check(socket: &Path, audience: &str, bundles: &BundleSet) -> Result<String, String> {
    let token = fetch_jwt(socket, audience)
        .await
        .ok_or("the agent served no JWT-SVID")?;
    meshid_identity::jwt::validate(&token, audience, bundles, SystemTime::now())
        .map_err(|e| format!("refused by the cached bundle: {e}"))?;
    validate_jwt(socket, &token, audience)
        .await
        .ok_or("refused by the agent's ValidateJWTSVID")?;
    signing_key(&token, audience, bundles).ok_or_else(|| "no key of the bundle signed it".into())
}

/// Which key of `bundles` signed `token`: the one whose bundle of its own
/// validates it.
fn signing_key(token: &str, audience: &str, bundles: &BundleSet) -> Option<String> {
    bundles.iter().find_map(|b| {
        b.jwt_authorities.iter().find_map(|key| {
            let mut alone = TrustBundle::new(b.trust_domain.clone());
            alone.jwt_authorities.push(key.clone());
            let mut set = BundleSet::new();
            set.insert(alone);
            meshid_identity::jwt::validate(token, audience, &set, SystemTime::now())
                .ok()
                .map(|_| key.key_id.clone())
        })
    })
}

// === impl JwtTally ===

impl JwtTally {
    /// Checks that failed.
    pub fn failed(&self) -> u64 {
        self.failed.values().sum()
    }
}

impl fmt::Display for JwtTally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ok: u64 = self.ok_by_key.values().sum();
        writeln!(f, "JWT-SVID checks: {ok} ok, {} failed", self.failed())?;
        for (kid, n) in &self.ok_by_key {
            writeln!(f, "  {n:>6} signed by {kid}")?;
        }
        for (reason, n) in &self.failed {
            writeln!(f, "  {n:>6} × {reason}")?;
        }
        Ok(())
    }
}
