//! Turning uids and gids into user and group names.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest passwd/group file read by [`NameResolver::Files`].
const MAX_DB_FILE: u64 = 16 * 1024 * 1024;

/// Where user and group names come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameResolver {
    /// The system's name service (`getpwuid_r`/`getgrgid_r`: /etc files,
    /// LDAP, sssd, … as nsswitch.conf says).
    #[default]
    System,
    /// Only the given files in `/etc/passwd` and `/etc/group` format
    /// (e.g. a container's or a test's own).
    Files {
        /// A file in `/etc/passwd` format.
        passwd: PathBuf,
        /// A file in `/etc/group` format.
        group: PathBuf,
    },
}

// === impl NameResolver ===

impl NameResolver {
    /// The name of `uid`, if it has one.
    pub fn user_name(&self, uid: u32) -> Option<String> {
        match self {
            Self::System => match nix::unistd::User::from_uid(uid.into()) {
                Ok(user) => user.map(|u| u.name),
                Err(e) => {
                    tracing::debug!(uid, error = %e, "user lookup failed");
                    None
                }
            },
            Self::Files { passwd, .. } => lookup_file(passwd, uid),
        }
    }

    /// The name of `gid`, if it has one.
    pub fn group_name(&self, gid: u32) -> Option<String> {
        match self {
            Self::System => match nix::unistd::Group::from_gid(gid.into()) {
                Ok(group) => group.map(|g| g.name),
                Err(e) => {
                    tracing::debug!(gid, error = %e, "group lookup failed");
                    None
                }
            },
            Self::Files { group, .. } => lookup_file(group, gid),
        }
    }
}

/// Finds the first `name:password:id:…` line whose third field is `id`.
fn lookup_file(path: &Path, id: u32) -> Option<String> {
    let mut text = String::new();
    let read = File::open(path).and_then(|f| f.take(MAX_DB_FILE).read_to_string(&mut text));
    if let Err(e) = read {
        tracing::debug!(path = %path.display(), error = %e, "cannot read name database");
        return None;
    }
    find_name(&text, id)
}

fn find_name(text: &str, id: u32) -> Option<String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let _password = fields.next()?;
            let line_id = fields.next()?.parse::<u32>().ok()?;
            (line_id == id && !name.is_empty()).then(|| name.to_owned())
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_names_and_skips_junk() {
        let db = "# comment\nroot:x:0:0:root:/root:/bin/sh\n\ngarbage\n:x:5:\nbad:x:notanumber:\nnobody:x:65534:65534::/:/bin/false\n";
        assert_eq!(find_name(db, 0).as_deref(), Some("root"));
        assert_eq!(find_name(db, 65534).as_deref(), Some("nobody"));
        assert_eq!(find_name(db, 5), None);
        assert_eq!(find_name(db, 7), None);
    }

    #[test]
    fn system_knows_root() {
        assert_eq!(NameResolver::System.user_name(0).as_deref(), Some("root"));
    }
}
