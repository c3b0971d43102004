//! A compiled policy file before it meets a workload: policies that carry
//! a `selector` are kept until the workload's [`Labels`] decide whether
//! they apply ([`PolicyDocument::for_workload`]).

use super::compile::{Compiled, compile};
use super::error::{PolicyError, Warning};
use super::labels::Labels;
use super::load::{check_size, read_bounded, tcp_port_warnings};
use super::model::PolicyFile;
use super::peer_auth::{PeerAuth, PeerAuthentication};
use super::set::{Policy, PolicySet};
use std::path::Path;

/// Every policy of a file, compiled, selectors not yet applied.
///
/// `meshid policy check` works on this; a proxy evaluates the
/// [`PolicySet`] that [`for_workload`](Self::for_workload) makes of it.
#[derive(Debug)]
pub struct PolicyDocument {
    pub(crate) policies: Vec<Policy>,
    pub(crate) peer_auth: Vec<PeerAuth>,
}

impl PolicyDocument {
    /// Parses and compiles a policy file's text.
    ///
    /// Returns the document and warnings about valid but suspicious
    /// policies. A document without policies (empty, only comments,
    /// `policies: []`) is an error, never an allow-all set: allowing
    /// everything must be written out (an ALLOW policy with the empty rule
    /// `{}`).
    pub fn from_yaml(text: &str) -> Result<(Self, Vec<Warning>), PolicyError> {
        check_size(text.len())?;
        if text.trim().is_empty() {
            return Err(PolicyError::NoPolicies);
        }
        let file: PolicyFile =
            serde_yaml_ng::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        let Compiled {
            policies,
            peer_auth,
            warnings,
        } = compile(file)?;
        Ok((
            Self {
                policies,
                peer_auth,
            },
            warnings,
        ))
    }

    /// Reads, parses and compiles a policy file (at most
    /// [`MAX_POLICY_FILE_SIZE`](super::MAX_POLICY_FILE_SIZE) bytes).
    pub fn from_file(path: impl AsRef<Path>) -> Result<(Self, Vec<Warning>), PolicyError> {
        Self::from_yaml(&read_bounded(path.as_ref())?)
    }

    /// The policies in file order, selectors not applied.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// How many `peerAuthentication` items the file has.
    pub fn peer_authentication_count(&self) -> usize {
        self.peer_auth.len()
    }

    /// True if some policy or peer authentication only applies to
    /// workloads with certain labels.
    pub fn needs_labels(&self) -> bool {
        self.policies.iter().any(Policy::has_selector)
            || self.peer_auth.iter().any(PeerAuth::needs_labels)
    }

    /// As [`PolicySet::tcp_port_warnings`], over every policy.
    pub fn tcp_port_warnings(&self, tcp_ports: &[u16]) -> Vec<Warning> {
        tcp_port_warnings(&self.policies, tcp_ports)
    }

    /// The policies that apply to a workload with `labels`: those without
    /// a selector and those whose selector matches. When none is left no
    /// policy applies and everything is allowed (as Istio does). The
    /// peer authentication is resolved for the same labels.
    ///
    /// Fails closed: a selector with labels unknown (`None`) is
    /// [`PolicyError::LabelsRequired`], never a guess.
    pub fn for_workload(self, labels: Option<&Labels>) -> Result<PolicySet, PolicyError> {
        let peer_auth = PeerAuthentication::resolve(&self.peer_auth, labels)?;
        let mut kept = Vec::with_capacity(self.policies.len());
        for p in self.policies {
            let applies = match (&p.selector, labels) {
                (None, _) => true,
                (Some(s), _) if !s.needs_labels() => true,
                (Some(s), Some(l)) => s.matches(l),
                (Some(_), None) => {
                    return Err(PolicyError::LabelsRequired {
                        policy: p.name.to_string(),
                    });
                }
            };
            if applies {
                kept.push(p);
            }
        }
        Ok(PolicySet::new(kept, peer_auth))
    }
}

// === impl PolicySet ===

impl PolicySet {
    /// Parses and compiles a policy file's text for a workload whose
    /// labels are unknown: a policy with a selector is an error (see
    /// [`PolicyDocument::for_workload`]); so is a file without policies
    /// (see [`PolicyDocument::from_yaml`]).
    pub fn from_yaml(text: &str) -> Result<(PolicySet, Vec<Warning>), PolicyError> {
        let (doc, warnings) = PolicyDocument::from_yaml(text)?;
        Ok((doc.for_workload(None)?, warnings))
    }

    /// Reads, parses and compiles a policy file, as [`PolicySet::from_yaml`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<(PolicySet, Vec<Warning>), PolicyError> {
        Self::from_yaml(&read_bounded(path.as_ref())?)
    }

    /// The policy file `policy` as it applies to the workload whose
    /// downward API labels file is `labels`. The labels file is read only
    /// when a policy has a selector; then it must be readable.
    pub fn for_workload(
        policy: &Path,
        labels: Option<&Path>,
    ) -> Result<(PolicySet, Vec<Warning>), PolicyError> {
        let text = read_bounded(policy)?;
        let labels = labels.map(|p| (p, read_bounded(p)));
        build(&text, labels.as_ref().map(|(p, r)| (*p, r)))
    }
}

/// Compiles policy file `text` for the workload whose labels file at
/// `path` read as `read` (`labels` is `None` without a labels file).
pub(crate) fn build(
    text: &str,
    labels: Option<(&Path, &Result<String, PolicyError>)>,
) -> Result<(PolicySet, Vec<Warning>), PolicyError> {
    let (doc, warnings) = PolicyDocument::from_yaml(text)?;
    let labels = match labels {
        Some((path, read)) if doc.needs_labels() => {
            let origin = || path.display().to_string();
            let text = read.as_ref().map_err(|e| PolicyError::Labels {
                origin: origin(),
                problem: e.to_string(),
            })?;
            let l = Labels::parse_downward_api(text).map_err(|problem| PolicyError::Labels {
                origin: origin(),
                problem,
            })?;
            Some(l)
        }
        _ => None,
    };
    Ok((doc.for_workload(labels.as_ref())?, warnings))
}
