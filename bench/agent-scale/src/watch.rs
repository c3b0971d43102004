//! `watch`: one Workload API `FetchX509SVID` stream, summarised per message
//! on stdout; and the parent side that runs one `watch` child per uid and
//! keeps every stream's latest summary.
//!
//! The agent serves a caller only the entries that select its uid, so to see
//! every SVID the agent holds, the benchmark runs itself once per uid the
//! entries select (as that uid: the parent must be root) and each child
//! reports which CA key signed each SVID it is served (the leaf's
//! AuthorityKeyIdentifier) and which roots the stream's bundle holds (their
//! SubjectKeyIdentifier), as lowercase hex, the CA's `key_id`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use meshid_proto::workload::X509svidResponse;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::mpsc;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// Pause before a refused or ended stream is opened again.
const RETRY: Duration = Duration::from_millis(200);

/// Flags of `watch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The agent's Workload API socket.
    #[arg(long)]
    socket: PathBuf,
}

/// One message of one stream: how many SVIDs were served by which CA key,
/// and the key IDs of the bundle's roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// SVIDs per signing key (AKI hex; `-` when a leaf has none).
    pub by_key: BTreeMap<String, usize>,
    /// SKI hex of every root in the first SVID's bundle.
    pub roots: Vec<String>,
}

// === impl Summary ===

impl Summary {
    /// SVIDs in the message.
    pub fn svids(&self) -> usize {
        self.by_key.values().sum()
    }

    /// SVIDs signed by `key_id`.
    pub fn signed_by(&self, key_id: &str) -> usize {
        self.by_key.get(key_id).copied().unwrap_or(0)
    }

    fn of(msg: &X509svidResponse) -> Self {
        let mut by_key = BTreeMap::new();
        for svid in &msg.svids {
            let aki = X509Certificate::from_der(&svid.x509_svid)
                .ok()
                .and_then(|(_, leaf)| key_id(&leaf, false))
                .unwrap_or_else(|| "-".into());
            *by_key.entry(aki).or_insert(0) += 1;
        }
        let mut roots = Vec::new();
        let mut rest = msg.svids.first().map_or(&[][..], |s| &s.bundle[..]);
        while let Ok((tail, root)) = X509Certificate::from_der(rest) {
            roots.push(key_id(&root, true).unwrap_or_else(|| "-".into()));
            rest = tail;
        }
        Self { by_key, roots }
    }

    /// `key=count,key=count roots=ski,ski`.
    fn to_line(&self) -> String {
        let keys: Vec<String> = self
            .by_key
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        format!("svids {} roots {}", keys.join(","), self.roots.join(","))
    }

    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("svids ")?;
        let (keys, roots) = rest.split_once(" roots ")?;
        let mut by_key = BTreeMap::new();
        for kv in keys.split(',').filter(|s| !s.is_empty()) {
            let (k, n) = kv.split_once('=')?;
            by_key.insert(k.to_owned(), n.parse().ok()?);
        }
        let roots = roots
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        Some(Self { by_key, roots })
    }
}

/// The AKI (`subject == false`) or SKI of `cert`, lowercase hex.
fn key_id(cert: &X509Certificate<'_>, subject: bool) -> Option<String> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) if !subject => {
                aki.key_identifier.as_ref().map(|k| hex::encode(k.0))
            }
            ParsedExtension::SubjectKeyIdentifier(ski) if subject => Some(hex::encode(ski.0)),
            _ => None,
        })
}

/// The child: prints one summary line per message. A refused or ended
/// stream (no socket yet, no SVID issued yet) is opened again after
/// [`RETRY`], each distinct error printed once on stderr; the parent's
/// timeouts bound the whole (it kills its children when it is done).
pub async fn run(a: Args) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    let mut last_error = String::new();
    loop {
        let error = match crate::streams::connect(a.socket.clone()).await {
            Err(e) => e,
            Ok(mut stream) => loop {
                match stream.message().await {
                    Ok(Some(m)) => {
                        writeln!(out, "{}", Summary::of(&m).to_line())?;
                        out.flush()?;
                    }
                    Ok(None) => break "the agent ended the stream".to_owned(),
                    Err(e) => break format!("stream error: {} ({:?})", e.message(), e.code()),
                }
            },
        };
        if error != last_error {
            eprintln!("watch: {error}; opening the stream again");
            last_error = error;
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The `watch` children, one per uid, and their latest summaries.
pub struct Watchers {
    /// Latest summary per child (index = uid − first uid).
    pub latest: Vec<Option<Summary>>,
    rx: mpsc::UnboundedReceiver<(usize, Result<Summary, String>)>,
    _children: Vec<tokio::process::Child>,
}

// === impl Watchers ===

impl Watchers {
    /// Starts this binary's `watch` on `socket` once as each of `uids`
    /// (uid and gid; the children are killed when this is dropped).
    pub fn spawn(socket: &Path, uids: std::ops::Range<u32>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut children = Vec::new();
        for (i, uid) in uids.enumerate() {
            let mut child = tokio::process::Command::new(&exe)
                .arg("watch")
                .arg("--socket")
                .arg(socket)
                .uid(uid)
                .gid(uid)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| {
                    format!("cannot start a watcher as uid {uid} (the benchmark must run as root)")
                })?;
            let stdout = child.stdout.take().context("no stdout")?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let r = Summary::parse(&line).ok_or_else(|| format!("bad line {line:?}"));
                    if tx.send((i, r)).is_err() {
                        return;
                    }
                }
                let _ = tx.send((i, Err(format!("watcher as uid {uid} exited"))));
            });
            children.push(child);
        }
        Ok(Self {
            latest: vec![None; children.len()],
            rx,
            _children: children,
        })
    }

    /// Waits for the next message of any stream (at most until `deadline`)
    /// and records it; returns when it came, or `None` at the deadline.
    pub async fn next(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<Option<Instant>> {
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Err(_) => Ok(None),
            Ok(None) => anyhow::bail!("every watcher exited"),
            Ok(Some((_, Err(e)))) => anyhow::bail!("{e} (see its stderr above)"),
            Ok(Some((i, Ok(s)))) => {
                self.latest[i] = Some(s);
                Ok(Some(Instant::now()))
            }
        }
    }

    /// True when every stream has sent a message and `f` holds for each.
    pub fn all(&self, f: impl Fn(&Summary) -> bool) -> bool {
        self.latest.iter().all(|s| s.as_ref().is_some_and(&f))
    }

    /// SVIDs served over all streams (latest messages).
    pub fn svids(&self) -> usize {
        self.latest.iter().flatten().map(Summary::svids).sum()
    }

    /// SVIDs signed by `key_id` over all streams (latest messages).
    pub fn signed_by(&self, key_id: &str) -> usize {
        self.latest
            .iter()
            .flatten()
            .map(|s| s.signed_by(key_id))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_line_reads_back() {
        let s = Summary {
            by_key: [("ab01".to_owned(), 3), ("-".to_owned(), 1)].into(),
            roots: vec!["ab01".into(), "cd02".into()],
        };
        assert_eq!(Summary::parse(&s.to_line()), Some(s));
        assert_eq!(Summary::parse("svids  roots "), Some(Summary::default()));
    }
}
