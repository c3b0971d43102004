//! Continuous HTTP load for the rotation scenarios: one thread per
//! [`Target`] sends `GET /load/<target>/<n>` until [`Load::stop`], counting
//! answers that are `200 hello` and failures by reason. Bounded: each
//! thread stops by itself after [`MAX_REQUESTS`] or [`MAX_RUN`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::eventually;
use crate::http::{Client, Failure};

/// Requests one thread sends at most.
pub const MAX_REQUESTS: u64 = 100_000;
/// How long one thread runs at most.
pub const MAX_RUN: Duration = Duration::from_secs(600);
/// The pause between two requests of one thread (a 2-core CI machine runs
/// the CA, agent, proxies and Envoy besides).
const PAUSE: Duration = Duration::from_millis(20);
/// How many failures are described one by one in the report.
const SHOWN_FAILURES: usize = 5;

/// Where one load thread sends its requests.
#[derive(Clone, Debug)]
pub struct Target {
    /// Names the target in the report and in the request paths.
    pub name: String,
    /// The plain-HTTP port on 127.0.0.1 (an outbound proxy or Envoy).
    pub port: u16,
    /// Keep the client connection open across requests.
    pub keep_alive: bool,
}

/// What one target's thread saw.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// The target's name.
    pub target: String,
    /// Requests answered `200 hello`.
    pub ok: u64,
    /// Failed requests by reason.
    pub failed: BTreeMap<String, u64>,
    /// The first few failures: (request number, reason, seconds into the run).
    pub first_failures: Vec<(u64, String, f64)>,
    /// Client connections opened.
    pub connections: u64,
}

/// What every thread saw, printed by [`Load::stop`].
#[derive(Clone, Debug)]
pub struct Report {
    /// One per target.
    pub tallies: Vec<Tally>,
    /// How long the load ran.
    pub elapsed: Duration,
}

/// Running load threads.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    started: Instant,
    threads: Vec<JoinHandle<Tally>>,
}

// === impl Load ===

impl Load {
    /// Starts one thread per target.
    pub fn start(targets: &[Target]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let threads = targets
            .iter()
            .cloned()
            .map(|t| {
                let (stop, sent) = (stop.clone(), sent.clone());
                std::thread::spawn(move || run(&t, &stop, &sent, started))
            })
            .collect();
        Self {
            stop,
            sent,
            started,
            threads,
        }
    }

    /// Requests sent so far by all threads.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until `n` more requests have been sent (so load is known to
    /// flow over what just happened); panics after `within`.
    pub fn wait_for_more(&self, n: u64, within: Duration) {
        let target = self.sent() + n;
        eventually(&format!("{n} more requests of load"), within, || {
            (self.sent() >= target).then_some(())
        });
    }

    /// Stops every thread and prints the counts.
    pub fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let tallies = self
            .threads
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("a load thread panicked"))
            })
            .collect();
        let report = Report {
            tallies,
            elapsed: self.started.elapsed(),
        };
        eprintln!("{report}");
        report
    }
}

fn run(t: &Target, stop: &AtomicBool, sent: &AtomicU64, started: Instant) -> Tally {
    let mut client = Client::new(t.port, t.keep_alive);
    let mut tally = Tally {
        target: t.name.clone(),
        ..Tally::default()
    };
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && n < MAX_REQUESTS && started.elapsed() < MAX_RUN {
        let outcome = client.send("GET", &format!("/load/{}/{n}", t.name));
        sent.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok((200, body)) if body == "hello" => tally.ok += 1,
            other => {
                let reason = reason(&other);
                if tally.first_failures.len() < SHOWN_FAILURES {
                    let at = started.elapsed().as_secs_f64();
                    tally.first_failures.push((n, reason.clone(), at));
                }
                *tally.failed.entry(reason).or_default() += 1;
            }
        }
        n += 1;
        std::thread::sleep(PAUSE);
    }
    tally.connections = client.connections;
    tally
}

fn reason(outcome: &Result<(u16, String), Failure>) -> String {
    match outcome {
        Ok((200, body)) => format!("200 with body {body:?}"),
        Ok((status, _)) => format!("status {status}"),
        Err(Failure::Connect) => "no connection".into(),
        Err(Failure::ClosedReused) => "keep-alive connection closed before the answer".into(),
        Err(Failure::Closed) => "connection closed before the answer".into(),
        Err(Failure::Io(kind)) => format!("i/o: {kind:?}"),
        Err(Failure::Malformed) => "malformed response".into(),
    }
}

// === impl Report ===

impl Report {
    /// Requests answered `200 hello`, all targets.
    pub fn ok(&self) -> u64 {
        self.tallies.iter().map(|t| t.ok).sum()
    }

    /// Failed requests, all targets.
    pub fn failed(&self) -> u64 {
        self.tallies.iter().flat_map(|t| t.failed.values()).sum()
    }

    /// Panics with the report unless no request failed and every target
    /// had at least `min_ok` answered requests.
    pub fn assert_no_failures(&self, min_ok: u64) {
        assert_eq!(self.failed(), 0, "requests failed:\n{self}");
        for t in &self.tallies {
            assert!(
                t.ok >= min_ok,
                "{}: only {} requests answered (want {min_ok}):\n{self}",
                t.target,
                t.ok
            );
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "load over {:.1}s: {} ok, {} failed",
            self.elapsed.as_secs_f64(),
            self.ok(),
            self.failed()
        )?;
        for t in &self.tallies {
            let failed: u64 = t.failed.values().sum();
            writeln!(
                f,
                "  {:<24} {:>6} ok {:>4} failed {:>6} client connections",
                t.target, t.ok, failed, t.connections
            )?;
            for (reason, n) in &t.failed {
                writeln!(f, "      {n} × {reason}")?;
            }
            for (n, reason, at) in &t.first_failures {
                writeln!(f, "      request {n} at {at:.1}s: {reason}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::backend;

    #[test]
    fn load_counts_answers_and_failures_per_target() {
        let (port, _seen) = backend();
        let load = Load::start(&[
            Target {
                name: "up".into(),
                port,
                keep_alive: true,
            },
            Target {
                name: "down".into(),
                port: crate::free_port(),
                keep_alive: false,
            },
        ]);
        load.wait_for_more(10, Duration::from_secs(20));
        let report = load.stop();
        let up = &report.tallies[0];
        assert!(up.ok >= 1 && up.failed.is_empty(), "{report}");
        let down = &report.tallies[1];
        assert_eq!(down.ok, 0, "{report}");
        assert!(down.failed.contains_key("no connection"), "{report}");
        assert!(report.to_string().contains("failed"), "{report}");
    }
}
