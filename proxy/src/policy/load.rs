//! Reading a policy file: size limit, YAML parsing, compilation, warnings.

use super::compile::compile;
use super::error::{PolicyError, Warning};
use super::model::PolicyFile;
use super::set::{Action, PolicySet};
use std::io::Read;
use std::path::Path;

/// Largest policy file accepted, in bytes (1 MiB).
pub const MAX_POLICY_FILE_SIZE: u64 = 1024 * 1024;

impl PolicySet {
    /// Parses and compiles a policy file's text.
    ///
    /// Returns the set and warnings about valid but suspicious policies.
    /// A document without policies (empty, only comments, `policies: []`)
    /// is an error, never an allow-all set: allowing everything must be
    /// written out (an ALLOW policy with the empty rule `{}`).
    pub fn from_yaml(text: &str) -> Result<(PolicySet, Vec<Warning>), PolicyError> {
        let size = text.len() as u64;
        if size > MAX_POLICY_FILE_SIZE {
            return Err(PolicyError::TooLarge {
                size,
                max: MAX_POLICY_FILE_SIZE,
            });
        }
        if text.trim().is_empty() {
            return Err(PolicyError::NoPolicies);
        }
        let file: PolicyFile =
            serde_yaml_ng::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        let (policies, warnings) = compile(file)?;
        Ok((PolicySet::new(policies), warnings))
    }

    /// Reads, parses and compiles a policy file (at most [`MAX_POLICY_FILE_SIZE`] bytes).
    pub fn from_file(path: impl AsRef<Path>) -> Result<(PolicySet, Vec<Warning>), PolicyError> {
        let text = read_bounded(path.as_ref())?;
        Self::from_yaml(&text)
    }

    /// Warns about rules whose HTTP-only fields (methods, paths, hosts,
    /// request headers) may meet plain TCP traffic on one of `tcp_ports`.
    ///
    /// On TCP an ALLOW rule with such fields never matches; a DENY or AUDIT
    /// rule ignores them and applies its remaining conditions.
    pub fn tcp_port_warnings(&self, tcp_ports: &[u16]) -> Vec<Warning> {
        let mut out = Vec::new();
        for p in self.policies.iter() {
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

fn check_size(len: usize) -> Result<(), PolicyError> {
    let size = len as u64;
    if size > MAX_POLICY_FILE_SIZE {
        return Err(PolicyError::TooLarge {
            size,
            max: MAX_POLICY_FILE_SIZE,
        });
    }
    Ok(())
}
