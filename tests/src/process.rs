//! Child processes that never outlive the test.

use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A builder for a command run by a test.
#[derive(Debug)]
pub struct Cmd {
    inner: Command,
    name: String,
}

/// A running child, killed (SIGKILL) and reaped when dropped. Its stdout and
/// stderr go to files in `log_dir` so a failing test can print them.
#[derive(Debug)]
pub struct Child {
    child: std::process::Child,
    name: String,
    log: std::path::PathBuf,
}

// === impl Cmd ===

impl Cmd {
    /// A command for `program`.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let name = program.as_ref().to_string_lossy().into_owned();
        Self {
            inner: Command::new(program),
            name,
        }
    }

    /// The `meshid` binary under test.
    pub fn meshid() -> Self {
        let mut c = Self::new(crate::meshid_bin());
        c.name = "meshid".into();
        c
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.inner.env(k, v);
        self
    }

    /// Sets the working directory.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.inner.current_dir(dir);
        self
    }

    /// Runs to completion and returns its output.
    pub fn output(mut self) -> Output {
        self.inner
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.name))
    }

    /// Runs to completion; panics with its output unless it exits 0.
    /// Returns stdout as a string.
    pub fn run_ok(self) -> String {
        let name = self.name.clone();
        let out = self.output();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{name} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Starts it in the background with output logged under `log_dir`.
    pub fn spawn(mut self, log_dir: &Path) -> Child {
        let base = Path::new(&self.name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "child".into());
        let log = log_dir.join(format!("{base}-{}.log", unique()));
        let file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("create log {}: {e}", log.display()));
        let err = file
            .try_clone()
            .unwrap_or_else(|e| panic!("clone log handle: {e}"));
        let child = self
            .inner
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        Child {
            child,
            name: self.name,
            log,
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

// === impl Child ===

impl Child {
    /// The OS process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child wrote so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The file its stdout and stderr go to.
    pub fn log_file(&self) -> &Path {
        &self.log
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its exit status once it has exited; `None` while it runs.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns the
    /// exit status, or kills it and panics if it did not stop.
    pub fn terminate(&mut self, timeout: std::time::Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not stop within {timeout:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- log of {} ---\n{}", self.name, self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
