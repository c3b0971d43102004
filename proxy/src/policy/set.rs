//! A compiled, immutable set of policies.

use super::labels::Selector;
use super::matcher::Rule;
use super::peer_auth::PeerAuthentication;
use std::fmt;
use std::sync::Arc;

/// What a policy does when one of its rules matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Allow matching traffic; once any ALLOW policy exists, unmatched traffic is denied.
    Allow,
    /// Deny matching traffic; takes precedence over ALLOW.
    Deny,
    /// Report matching traffic; never changes the decision.
    Audit,
}

impl Action {
    /// The name used in policy files (`ALLOW`, `DENY`, `AUDIT`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "ALLOW",
            Self::Deny => "DENY",
            Self::Audit => "AUDIT",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One compiled policy.
#[derive(Debug)]
pub struct Policy {
    pub(crate) name: Arc<str>,
    /// The workloads it applies to; `None`: every workload.
    pub(crate) selector: Option<Selector>,
    pub(crate) action: Action,
    pub(crate) rules: Box<[Rule]>,
}

impl Policy {
    /// The policy's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the policy does.
    pub fn action(&self) -> Action {
        self.action
    }

    /// True if it applies only to workloads with certain labels.
    pub fn has_selector(&self) -> bool {
        self.selector.as_ref().is_some_and(Selector::needs_labels)
    }

    /// How many rules it has (zero: matches nothing).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

/// All policies of one file, compiled for fast evaluation.
///
/// The empty set allows everything (no ALLOW policy exists) and requires
/// mTLS; it is what a proxy without a `policy` file uses. A policy file
/// never loads as the empty set (see [`PolicySet::from_yaml`]).
#[derive(Debug, Default)]
pub struct PolicySet {
    pub(crate) policies: Box<[Policy]>,
    pub(crate) has_allow: bool,
    pub(crate) peer_auth: PeerAuthentication,
}

impl PolicySet {
    pub(crate) fn new(policies: Vec<Policy>, peer_auth: PeerAuthentication) -> Self {
        let has_allow = policies.iter().any(|p| p.action == Action::Allow);
        Self {
            policies: policies.into(),
            has_allow,
            peer_auth,
        }
    }

    /// The mTLS mode of each inbound listener (by application port).
    pub fn peer_authentication(&self) -> &PeerAuthentication {
        &self.peer_auth
    }

    /// The policies in file order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// True if the set has at least one ALLOW policy (default becomes deny).
    pub fn has_allow_policy(&self) -> bool {
        self.has_allow
    }
}
