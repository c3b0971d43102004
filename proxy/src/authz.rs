//! The authorization outcome both protocols share: a policy
//! [`Decision`] after the proxy's [`Mode`] is applied.

use crate::config::Mode;
use crate::policy::Decision;

/// The outcome of authorization after applying the mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed by policy.
    Allow,
    /// Denied and refused.
    Deny,
    /// Denied by policy but let through (audit mode).
    DenyAudit,
}

// === impl Verdict ===

impl Verdict {
    /// Applies `mode` to a policy decision.
    pub fn of(d: &Decision, mode: Mode) -> Self {
        match (d.allowed, mode) {
            (true, _) => Self::Allow,
            (false, Mode::Audit) => Self::DenyAudit,
            (false, _) => Self::Deny,
        }
    }

    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::DenyAudit => "deny(audit)",
        }
    }
}

/// The deciding rule as `policy[rules[i]]`.
pub fn rule_label(d: &Decision) -> Option<String> {
    match (&d.policy, d.rule_index) {
        (Some(p), Some(i)) => Some(format!("{p}[rules[{i}]]")),
        (Some(p), None) => Some(p.to_string()),
        _ => None,
    }
}
