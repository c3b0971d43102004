//! A compiled, immutable set of policies.

use super::matcher::Rule;
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

    /// How many rules it has (zero: matches nothing).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

/// All policies of one file, compiled for fast evaluation.
///
/// The empty set allows everything (no ALLOW policy exists); it is what a
/// proxy without a `policy` file uses. A policy file never loads as the
/// empty set (see [`PolicySet::from_yaml`]).
#[derive(Debug, Default)]
pub struct PolicySet {
    pub(crate) policies: Box<[Policy]>,
    pub(crate) has_allow: bool,
}

impl PolicySet {
    pub(crate) fn new(policies: Vec<Policy>) -> Self {
        let has_allow = policies.iter().any(|p| p.action == Action::Allow);
        Self {
            policies: policies.into(),
            has_allow,
        }
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
