//! Reading the few /proc files attestation needs, defensively: every file
//! is size-bounded and every parse failure is an error, never a panic.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::AttestError;

/// Largest /proc text file we read (stat and status are a few KiB).
const MAX_PROC_FILE: u64 = 64 * 1024;
/// Initial read buffer: larger than a typical stat or status file.
const READ_CAPACITY: usize = 4096;
/// Largest number of supplementary groups we accept (Linux NGROUPS_MAX).
const MAX_GROUPS: usize = 65536;
/// `ESRCH`: the process does not exist (returned by some /proc reads).
const ESRCH: i32 = 3;

/// A /proc tree (the real `/proc` or a fake one in tests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcFs<'a> {
    root: &'a Path,
}

/// What we use from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Field 3: process state (`R`, `S`, `Z`, …).
    pub(crate) state: char,
    /// Field 22: start time in clock ticks since boot.
    pub(crate) start_time: u64,
}

/// What we use from `/proc/<pid>/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    /// Effective uid (second number of `Uid:`).
    pub(crate) euid: u32,
    /// Effective gid (second number of `Gid:`).
    pub(crate) egid: u32,
    /// Supplementary groups (`Groups:`).
    pub(crate) groups: Vec<u32>,
}

// === impl ProcFs ===

impl<'a> ProcFs<'a> {
    pub(crate) fn new(root: &'a Path) -> Self {
        Self { root }
    }

    fn path(&self, pid: i32, file: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(file)
    }

    /// Parsed `/proc/<pid>/stat`; a zombie counts as gone.
    pub(crate) fn stat(&self, pid: i32) -> Result<Stat, AttestError> {
        let path = self.path(pid, "stat");
        let text = read_bounded(&path, pid)?;
        let stat = parse_stat(&text).map_err(|reason| AttestError::ProcParse {
            path: path.clone(),
            reason,
        })?;
        if matches!(stat.state, 'Z' | 'X' | 'x') {
            return Err(AttestError::ProcessGone { pid });
        }
        Ok(stat)
    }

    /// Parsed `/proc/<pid>/status`.
    pub(crate) fn status(&self, pid: i32) -> Result<Status, AttestError> {
        let path = self.path(pid, "status");
        let text = read_bounded(&path, pid)?;
        parse_status(&text).map_err(|reason| AttestError::ProcParse { path, reason })
    }

    /// `/proc/<pid>/cgroup` as text (at most 64 KiB) and its path.
    pub(crate) fn cgroup(&self, pid: i32) -> Result<(PathBuf, String), AttestError> {
        let path = self.path(pid, "cgroup");
        let text = read_bounded(&path, pid)?;
        Ok((path, text))
    }

    /// Target of `/proc/<pid>/exe`: the executable's path.
    pub(crate) fn exe_path(&self, pid: i32) -> Result<PathBuf, AttestError> {
        let path = self.exe_link(pid);
        let target = std::fs::read_link(&path).map_err(|e| io_error(path.clone(), pid, e))?;
        if !target.is_absolute() {
            return Err(AttestError::ProcParse {
                path,
                reason: format!("executable path {target:?} is not absolute"),
            });
        }
        Ok(target)
    }

    /// `/proc/<pid>/exe` itself: opening it opens the very file the process
    /// runs, even if its path was since replaced or deleted.
    pub(crate) fn exe_link(&self, pid: i32) -> PathBuf {
        self.path(pid, "exe")
    }
}

/// Maps an I/O error on a /proc file: "no such process" means it exited.
pub(crate) fn io_error(path: PathBuf, pid: i32, e: io::Error) -> AttestError {
    if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ESRCH) {
        AttestError::ProcessGone { pid }
    } else {
        AttestError::ProcRead { path, source: e }
    }
}

fn read_bounded(path: &Path, pid: i32) -> Result<String, AttestError> {
    let file = File::open(path).map_err(|e| io_error(path.to_owned(), pid, e))?;
    // Room for a whole stat or status file, so it is read in one call
    // (an empty buffer makes read_to_end probe with extra reads first).
    let mut buf = Vec::with_capacity(READ_CAPACITY);
    file.take(MAX_PROC_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_error(path.to_owned(), pid, e))?;
    if buf.len() as u64 > MAX_PROC_FILE {
        return Err(AttestError::ProcParse {
            path: path.to_owned(),
            reason: format!("file is larger than {MAX_PROC_FILE} bytes"),
        });
    }
    String::from_utf8(buf).map_err(|_| AttestError::ProcParse {
        path: path.to_owned(),
        reason: "file is not UTF-8".to_owned(),
    })
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses
/// and may itself contain spaces and `)`, so fields are counted from the
/// last `)`.
pub(crate) fn parse_stat(text: &str) -> Result<Stat, String> {
    let close = text
        .rfind(')')
        .ok_or_else(|| "no ')' closing the command name".to_owned())?;
    if !text[..close].contains('(') {
        return Err("no '(' opening the command name".to_owned());
    }
    // Fields after the command name start at field 3 (state).
    let mut fields = text[close + 1..].split_ascii_whitespace();
    let state = fields
        .next()
        .and_then(|s| {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some(c),
                _ => None,
            }
        })
        .ok_or_else(|| "field 3 (state) is missing or not one character".to_owned())?;
    // Field 22 is the 19th after the state (field 3).
    let start = fields
        .nth(22 - 3 - 1)
        .ok_or_else(|| "field 22 (starttime) is missing".to_owned())?;
    let start_time = start
        .parse::<u64>()
        .map_err(|_| format!("field 22 (starttime) {:?} is not a number", truncate(start)))?;
    Ok(Stat { state, start_time })
}

/// Parses the `Uid:`, `Gid:` and `Groups:` lines of `/proc/<pid>/status`.
pub(crate) fn parse_status(text: &str) -> Result<Status, String> {
    let mut euid = None;
    let mut egid = None;
    let mut groups = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key {
            "Uid" => euid = Some(second_id(value, "Uid")?),
            "Gid" => egid = Some(second_id(value, "Gid")?),
            "Groups" => {
                let mut list = Vec::new();
                for g in value.split_ascii_whitespace() {
                    if list.len() >= MAX_GROUPS {
                        return Err(format!("more than {MAX_GROUPS} supplementary groups"));
                    }
                    list.push(parse_id(g, "Groups")?);
                }
                groups = Some(list);
            }
            _ => {}
        }
    }
    Ok(Status {
        euid: euid.ok_or_else(|| "no Uid: line".to_owned())?,
        egid: egid.ok_or_else(|| "no Gid: line".to_owned())?,
        groups: groups.ok_or_else(|| "no Groups: line".to_owned())?,
    })
}

/// `Uid:`/`Gid:` hold real, effective, saved and filesystem ids.
fn second_id(value: &str, key: &str) -> Result<u32, String> {
    let mut ids = value.split_ascii_whitespace();
    let effective = ids
        .nth(1)
        .ok_or_else(|| format!("{key}: line has fewer than two ids"))?;
    parse_id(effective, key)
}

fn parse_id(s: &str, key: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .map_err(|_| format!("{key}: id {:?} is not a number", truncate(s)))
}

fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stat_line(comm: &str, state: &str, start: &str) -> String {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime cutime cstime priority nice threads
        // itrealvalue starttime vsize ...
        format!(
            "42 ({comm}) {state} 1 42 42 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 {start} 1000 200"
        )
    }

    #[test]
    fn stat_reads_state_and_start_time() {
        let s = parse_stat(&stat_line("sleep", "S", "123456")).unwrap();
        assert_eq!(
            s,
            Stat {
                state: 'S',
                start_time: 123456
            }
        );
    }

    #[test]
    fn stat_comm_with_spaces_and_parens_uses_last_paren() {
        let s = parse_stat(&stat_line("a) Z 1 2 (b ) c", "R", "99")).unwrap();
        assert_eq!(
            s,
            Stat {
                state: 'R',
                start_time: 99
            }
        );
    }

    #[test]
    fn stat_garbage_is_an_error_not_a_panic() {
        for bad in [
            "",
            "42",
            "42 (x",
            "42 x) S",
            "42 (x) S 1 2",
            "42 (x) SS 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19",
            &stat_line("x", "S", "-5"),
            &stat_line("x", "S", "99999999999999999999999"),
            ")(",
            "(é) \u{0} \u{0}",
        ] {
            assert!(parse_stat(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn status_reads_effective_ids_and_groups() {
        let text = "Name:\tx\nUid:\t1000\t1001\t1000\t1000\nGid:\t100\t101\t100\t100\nGroups:\t4 27 1000 \nVmRSS:\t1 kB\n";
        let s = parse_status(text).unwrap();
        assert_eq!(
            s,
            Status {
                euid: 1001,
                egid: 101,
                groups: vec![4, 27, 1000]
            }
        );
    }

    #[test]
    fn status_empty_groups_is_fine() {
        let s = parse_status("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n").unwrap();
        assert!(s.groups.is_empty());
    }

    #[test]
    fn status_garbage_is_an_error() {
        for bad in [
            "",
            "Uid:\t1\nGid:\t1\t1\nGroups:\n",
            "Uid:\t1\t1\nGid:\t1\t1\n",
            "Uid:\t1\tx\nGid:\t1\t1\nGroups:\n",
            "Uid:\t1\t1\nGid:\t1\t1\nGroups:\t1 -2\n",
            "Uid:\t1\t4294967296\nGid:\t1\t1\nGroups:\n",
        ] {
            assert!(parse_status(bad).is_err(), "accepted {bad:?}");
        }
    }
}
