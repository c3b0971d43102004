//! Evaluation: DENY first, then ALLOW, with AUDIT reported on the side.

use super::matcher::{Attrs, TcpHttp};
use super::request::Request;
use super::set::{Action, Policy, PolicySet};
use std::fmt;
use std::sync::Arc;

/// Why a decision was made; short enough for a 403 header or a log field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A DENY policy matched.
    DeniedByPolicy,
    /// An ALLOW policy matched.
    AllowedByPolicy,
    /// No ALLOW policy exists, so everything not denied is allowed.
    NoAllowPolicies,
    /// ALLOW policies exist but none matched.
    NoAllowMatched,
}

impl Reason {
    /// A stable, short, lower-case description.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeniedByPolicy => "denied by policy",
            Self::AllowedByPolicy => "allowed by policy",
            Self::NoAllowPolicies => "allowed: no ALLOW policies",
            Self::NoAllowMatched => "denied: no ALLOW policy matched",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of evaluating one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The policy that decided, if one did.
    pub policy: Option<Arc<str>>,
    /// The index of the rule (in that policy) that matched.
    pub rule_index: Option<usize>,
    /// Why.
    pub reason: Reason,
    /// AUDIT policies that matched (they never change `allowed`).
    pub audited: Vec<Arc<str>>,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.allowed { "ALLOW" } else { "DENY" })?;
        match (&self.policy, self.rule_index) {
            (Some(p), Some(i)) => write!(f, " ({}: {p:?} rules[{i}])", self.reason),
            _ => write!(f, " ({})", self.reason),
        }
    }
}

/// How HTTP-only conditions on TCP behave for an action.
pub(crate) fn tcp_mode(action: Action) -> TcpHttp {
    match action {
        Action::Allow => TcpHttp::RuleFails,
        Action::Deny | Action::Audit => TcpHttp::ConditionsIgnored,
    }
}

/// The index of the first rule of `policy` that matches.
#[inline]
pub(crate) fn first_match(policy: &Policy, a: &Attrs<'_>) -> Option<usize> {
    let mode = tcp_mode(policy.action);
    policy.rules.iter().position(|r| r.check(a, mode).is_ok())
}

impl PolicySet {
    /// Decides one request. Allocates only when an AUDIT policy matches.
    pub fn evaluate(&self, req: &Request<'_>) -> Decision {
        let a = Attrs::new(req);
        let mut audited = Vec::new();
        for p in self.policies.iter().filter(|p| p.action == Action::Audit) {
            if first_match(p, &a).is_some() {
                audited.push(p.name.clone());
            }
        }
        let decided = |allowed, p: &Policy, i, reason| Decision {
            allowed,
            policy: Some(p.name.clone()),
            rule_index: Some(i),
            reason,
            audited: Vec::new(),
        };
        let mut d = self
            .policies
            .iter()
            .filter(|p| p.action == Action::Deny)
            .find_map(|p| first_match(p, &a).map(|i| decided(false, p, i, Reason::DeniedByPolicy)))
            .or_else(|| {
                if !self.has_allow {
                    return None;
                }
                self.policies
                    .iter()
                    .filter(|p| p.action == Action::Allow)
                    .find_map(|p| {
                        first_match(p, &a).map(|i| decided(true, p, i, Reason::AllowedByPolicy))
                    })
            })
            .unwrap_or_else(|| Decision {
                allowed: !self.has_allow,
                policy: None,
                rule_index: None,
                reason: if self.has_allow {
                    Reason::NoAllowMatched
                } else {
                    Reason::NoAllowPolicies
                },
                audited: Vec::new(),
            });
        d.audited = audited;
        d
    }
}
