//! The child processes of `meshid up`: started with their output in log
//! files, waited for with a deadline, stopped in reverse order with SIGTERM
//! (then SIGKILL) and always reaped.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::config::Program;

/// How long a child gets to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

/// One running child.
#[derive(Debug)]
pub struct Child {
    /// Its role: `ca`, `agent`, `proxy-a`, `proxy-b`.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
    process: tokio::process::Child,
    exited: Option<std::process::ExitStatus>,
}

/// Every child, in start order.
#[derive(Debug)]
pub struct Children {
    logs: PathBuf,
    list: Vec<Child>,
}

// === impl Children ===

impl Children {
    /// No children yet; logs go to `logs`.
    pub fn new(logs: PathBuf) -> Self {
        Self {
            logs,
            list: Vec::new(),
        }
    }

    /// The children, in start order.
    pub fn iter(&self) -> impl Iterator<Item = &Child> {
        self.list.iter()
    }

    /// Starts `meshid <args>` (this binary, or `program` when given).
    pub fn spawn_meshid(
        &mut self,
        name: &str,
        args: &[String],
        program: Option<Program>,
    ) -> anyhow::Result<()> {
        let program = match program {
            Some(p) => p,
            None => Program {
                program: std::env::current_exe().context("cannot find this program's path")?,
                prefix: Vec::new(),
            },
        };
        let log = self.logs.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = tokio::process::Command::new(&program.program);
        if let Some(root) = self.logs.parent() {
            // Readable by the demo uids, unlike e.g. root's home directory.
            cmd.current_dir(root);
        }
        // The children take their settings from the files `up` wrote, not
        // from flags the caller's environment might set.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if (k.starts_with("MESHID_") && k != "MESHID_LOG_FORMAT")
                || k == "SPIFFE_ENDPOINT_SOCKET"
            {
                cmd.env_remove(&key);
            }
        }
        cmd.args(&program.prefix)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Own process group: a terminal's Ctrl-C reaches only `up`,
            // which then stops the children in order.
            .process_group(0)
            .kill_on_drop(true);
        let process = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", program.program.display()))?;
        let pid = process
            .id()
            .ok_or_else(|| anyhow::anyhow!("{name} exited at once; see {}", log.display()))?;
        self.list.push(Child {
            name: name.to_owned(),
            pid,
            log,
            process,
            exited: None,
        });
        Ok(())
    }

    /// A child that has exited, if any (each reported once).
    pub fn first_exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        for c in &mut self.list {
            if c.exited.is_none()
                && let Ok(Some(st)) = c.process.try_wait()
            {
                c.exited = Some(st);
                return Some((c.name.clone(), st));
            }
        }
        None
    }

    /// Fails if a child has exited: naming it and its status.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.first_exited() {
            Some((name, st)) => anyhow::bail!("{name} exited during start-up ({st})"),
            None => Ok(()),
        }
    }

    /// Waits until a Unix socket accepts connections.
    pub async fn wait_for_socket(
        &mut self,
        who: &str,
        path: &Path,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        loop {
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                return Ok(());
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                anyhow::bail!("{who} did not open {} in time", path.display());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until `127.0.0.1:port` accepts TCP connections.
    pub async fn wait_for_port(
        &mut self,
        who: &str,
        port: u16,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                anyhow::bail!("{who} did not listen on 127.0.0.1:{port} in time");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops every child, last started first: SIGTERM, then SIGKILL after
    /// [`GRACE`]; reaps each one.
    pub async fn shutdown(&mut self) {
        for c in self.list.iter_mut().rev() {
            if c.exited.is_some() {
                continue;
            }
            if let Ok(Some(st)) = c.process.try_wait() {
                c.exited = Some(st);
                continue;
            }
            let pid = i32::try_from(c.pid).map(Pid::from_raw);
            if let Ok(pid) = pid {
                let _ = kill(pid, Signal::SIGTERM);
            }
            match tokio::time::timeout(GRACE, c.process.wait()).await {
                Ok(Ok(st)) => {
                    c.exited = Some(st);
                    if !st.success() {
                        eprintln!("meshid up: {} exited with {st}", c.name);
                    }
                }
                Ok(Err(e)) => eprintln!("meshid up: cannot reap {}: {e}", c.name),
                Err(_) => {
                    eprintln!(
                        "meshid up: {} did not stop within {GRACE:?}; killing it",
                        c.name
                    );
                    let _ = c.process.kill().await;
                    c.exited = c.process.try_wait().ok().flatten();
                }
            }
        }
    }

    /// The last `lines` lines of every child's log, for error reports.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for c in &self.list {
            out.push_str(&format!("--- {} ({}) ---\n", c.name, c.log.display()));
            out.push_str(&tail(&c.log, lines));
        }
        out
    }
}

/// The last `lines` lines of a file (of its last 64 KiB).
fn tail(path: &Path, lines: usize) -> String {
    use std::io::{Seek as _, SeekFrom};
    const WINDOW: u64 = 64 * 1024;
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(WINDOW)));
        let _ = f.take(WINDOW).read_to_end(&mut bytes);
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut s = all[start..].join("\n");
    s.push('\n');
    s
}
