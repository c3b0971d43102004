//! Reading a policy file (size limit, UTF-8) and the TCP-port warnings.

use super::error::{PolicyError, Warning};
use super::set::{Action, Policy, PolicySet};
use std::io::Read;
use std::path::Path;

/// Largest policy file accepted, in bytes (1 MiB).
pub const MAX_POLICY_FILE_SIZE: u64 = 1024 * 1024;

impl PolicySet {
    /// Warns about rules whose HTTP-only fields (methods, paths, hosts,
    /// request headers) may meet plain TCP traffic on one of `tcp_ports`.
    ///
    /// On TCP an ALLOW rule with such fields never matches; a DENY or AUDIT
    /// rule ignores them and applies its remaining conditions.
    pub fn tcp_port_warnings(&self, tcp_ports: &[u16]) -> Vec<Warning> {
        tcp_port_warnings(&self.policies, tcp_ports)
    }
}

/// [`PolicySet::tcp_port_warnings`] over `policies`.
pub(crate) fn tcp_port_warnings(policies: &[Policy], tcp_ports: &[u16]) -> Vec<Warning> {
    let mut out = Vec::new();
    for p in policies.iter() {
        for (i, rule) in p.rules.iter().enumerate() {
            if !rule.http_only {
                continue;
            }
            let port_limited: Vec<u16> = rule
                .to
                .iter()
                .flat_map(|o| o.ports.yes.iter().copied())
                .collect();
            let all_limited =
                !rule.to.is_empty() && rule.to.iter().all(|o| !o.ports.yes.is_empty());
            let hit = tcp_ports
                .iter()
                .copied()
                .find(|port| !all_limited || port_limited.contains(port));
            let Some(port) = hit else { continue };
            let effect = match p.action {
                Action::Allow => "this ALLOW rule never matches there",
                Action::Deny | Action::Audit => {
                    "its HTTP conditions are ignored there and the rest of the rule applies"
                }
            };
            out.push(Warning {
                policy: p.name.to_string(),
                rule_index: Some(i),
                message: format!(
                    "rule uses HTTP-only fields but may apply to TCP port {port}: {effect}"
                ),
            });
        }
    }
    out
}

/// Reads a UTF-8 file of at most [`MAX_POLICY_FILE_SIZE`] bytes.
pub(crate) fn read_bounded(path: &Path) -> Result<String, PolicyError> {
    let io = |source| PolicyError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    check_size(bytes.len())?;
    String::from_utf8(bytes)
        .map_err(|_| PolicyError::Syntax(format!("{} is not UTF-8 text", path.display())))
}

pub(crate) fn check_size(len: usize) -> Result<(), PolicyError> {
    let size = len as u64;
    if size > MAX_POLICY_FILE_SIZE {
        return Err(PolicyError::TooLarge {
            size,
            max: MAX_POLICY_FILE_SIZE,
        });
    }
    Ok(())
}
