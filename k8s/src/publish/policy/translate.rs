//! Istio `AuthorizationPolicy` → the proxy's policy, failing closed.
//!
//! What the proxy cannot enforce (request principals, IP blocks, `when`
//! keys it does not know, `targetRef(s)`) never widens what is allowed: in
//! an `ALLOW` or `AUDIT` policy the rule that uses it is dropped (it then
//! matches nothing), in a `DENY` policy the field is removed from the rule
//! (which then matches, and denies, more). `CUSTOM` (an external
//! authorizer; none exists here) becomes `DENY` with the same rules. Every
//! such change is returned as a note for the caller to log.
//!
//! Istio's principals name the mesh's trust domain `cluster.local`; they
//! are rewritten to the real one, and `serviceAccounts: [ns/sa]` become the
//! principal `<td>/ns/<ns>/sa/<sa>` (the default SPIFFE ID template's
//! form), which is what the proxy compares with the peer's SPIFFE ID
//! without its `spiffe://`.

use meshid_identity::TrustDomain;

use super::doc::{Condition, From, Policy, Rule, Selector, Source, To};
use crate::istio::{self, AuthorizationPolicySpec, WorkloadSelector};

/// Istio's name for the local trust domain in principals.
const ISTIO_LOCAL_TD: &str = "cluster.local";

/// The `when` keys the proxy evaluates.
const KNOWN_KEYS: [&str; 3] = ["source.principal", "source.namespace", "destination.port"];

/// A translated policy and what had to change.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The policy for the file.
    pub policy: Policy,
    /// One line per change, for the log.
    pub notes: Vec<String>,
}

/// Translates the AuthorizationPolicy `namespace/name`.
pub fn authorization_policy(
    namespace: &str,
    name: &str,
    spec: &AuthorizationPolicySpec,
    td: &TrustDomain,
) -> Translated {
    let mut notes = Vec::new();
    let rules_in = spec.rules.clone().unwrap_or_default();
    let (action, narrow, rules_in) = match spec.action.as_deref().unwrap_or("ALLOW") {
        "ALLOW" => ("ALLOW", true, rules_in),
        "AUDIT" => ("AUDIT", true, rules_in),
        "DENY" => ("DENY", false, rules_in),
        "CUSTOM" => {
            notes.push("action CUSTOM (external authorizer) is enforced as DENY".to_owned());
            ("DENY", false, rules_in)
        }
        other => {
            notes.push(format!(
                "unknown action {other:?}: enforced as DENY of every request"
            ));
            ("DENY", false, vec![istio::Rule::default()])
        }
    };
    let mut rules = Vec::new();
    let targeted = spec.target_ref.is_some() || spec.target_refs.is_some();
    if targeted && narrow {
        notes.push("targetRef(s) are not supported: the policy's rules are dropped".to_owned());
    } else {
        if targeted {
            notes.push("targetRef(s) ignored: the DENY applies to every selected pod".to_owned());
        }
        for (i, rule) in rules_in.into_iter().enumerate() {
            let mut ctx = RuleCtx {
                td,
                unsupported: Vec::new(),
            };
            let out = ctx.rule(rule);
            if ctx.unsupported.is_empty() {
                rules.extend(out);
            } else if narrow {
                notes.push(format!(
                    "rules[{i}] dropped (uses {}, which meshid cannot enforce)",
                    ctx.unsupported.join(", ")
                ));
            } else {
                notes.push(format!(
                    "rules[{i}]: {} removed (meshid cannot enforce it; the rule denies more)",
                    ctx.unsupported.join(", ")
                ));
                rules.extend(out);
            }
        }
    }
    Translated {
        policy: Policy {
            name: format!("{namespace}/{name}"),
            action,
            selector: selector(spec.selector.as_ref()),
            rules,
        },
        notes,
    }
}

/// `selector.matchLabels`, `None` when it names no label.
pub(crate) fn selector(s: Option<&WorkloadSelector>) -> Option<Selector> {
    s.filter(|s| !s.match_labels.is_empty()).map(|s| Selector {
        match_labels: s.match_labels.clone(),
    })
}

struct RuleCtx<'a> {
    td: &'a TrustDomain,
    unsupported: Vec<String>,
}

impl RuleCtx<'_> {
    /// The rule, split in several when a source needs `serviceAccounts` and
    /// `principals` at once (the proxy has one principal list per source;
    /// the service accounts go to a `source.principal` condition of a rule
    /// of their own, which keeps Istio's AND).
    fn rule(&mut self, rule: istio::Rule) -> Vec<Rule> {
        let to: Vec<To> = rule
            .to
            .into_iter()
            .map(|t| To {
                operation: t.operation,
            })
            .collect();
        let mut when = Vec::new();
        for c in rule.when {
            if let Some(c) = self.condition(c) {
                when.push(c);
            }
        }
        let mut base = Rule {
            from: Vec::new(),
            to,
            when,
        };
        let mut split = Vec::new();
        let had_from = !rule.from.is_empty();
        for f in rule.from {
            let (source, extra) = self.source(f.source);
            match extra {
                None => base.from.push(From { source }),
                Some(cond) => {
                    let mut r = base.clone();
                    r.from = vec![From { source }];
                    r.when.push(cond);
                    split.push(r);
                }
            }
        }
        let mut out = Vec::new();
        if !had_from || !base.from.is_empty() {
            out.push(base);
        }
        out.extend(split);
        out
    }

    fn source(&mut self, s: istio::Source) -> (Source, Option<Condition>) {
        for (field, values) in [
            ("requestPrincipals", &s.request_principals),
            ("notRequestPrincipals", &s.not_request_principals),
            ("ipBlocks", &s.ip_blocks),
            ("notIpBlocks", &s.not_ip_blocks),
            ("remoteIpBlocks", &s.remote_ip_blocks),
            ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
        ] {
            if !values.is_empty() {
                self.unsupported.push(format!("source.{field}"));
            }
        }
        let mut out = Source {
            principals: s.principals.iter().map(|p| self.principal(p)).collect(),
            not_principals: s.not_principals.iter().map(|p| self.principal(p)).collect(),
            namespaces: s.namespaces,
            not_namespaces: s.not_namespaces,
        };
        let accounts = self.accounts(&s.service_accounts, "serviceAccounts");
        let not_accounts = self.accounts(&s.not_service_accounts, "notServiceAccounts");
        out.not_principals.extend(not_accounts);
        let mut extra = None;
        if !accounts.is_empty() {
            if out.principals.is_empty() {
                out.principals = accounts;
            } else {
                extra = Some(Condition {
                    key: "source.principal".to_owned(),
                    values: accounts,
                    not_values: Vec::new(),
                });
            }
        }
        (out, extra)
    }

    fn accounts(&mut self, values: &[String], field: &str) -> Vec<String> {
        let mut out = Vec::new();
        for v in values {
            match v.split_once('/') {
                Some((ns, sa)) if !ns.is_empty() && !sa.is_empty() && !v.contains('*') => {
                    out.push(format!("{}/ns/{ns}/sa/{sa}", self.td.as_str()));
                }
                _ => self
                    .unsupported
                    .push(format!("source.{field} {v:?} (write <namespace>/<name>)")),
            }
        }
        out
    }

    fn condition(&mut self, c: istio::Condition) -> Option<Condition> {
        let header = c
            .key
            .strip_prefix("request.headers[")
            .is_some_and(|r| r.len() > 1 && r.ends_with(']'));
        if !header && !KNOWN_KEYS.contains(&c.key.as_str()) {
            self.unsupported.push(format!("when key {:?}", c.key));
            return None;
        }
        let principal = c.key == "source.principal";
        let map = |v: Vec<String>| -> Vec<String> {
            if principal {
                v.iter().map(|p| principal_of(self.td, p)).collect()
            } else {
                v
            }
        };
        Some(Condition {
            values: map(c.values),
            not_values: map(c.not_values),
            key: c.key,
        })
    }

    fn principal(&self, p: &str) -> String {
        principal_of(self.td, p)
    }
}

/// `cluster.local/ns/a/sa/b` → `<td>/ns/a/sa/b`; other values unchanged.
fn principal_of(td: &TrustDomain, p: &str) -> String {
    match p.strip_prefix(ISTIO_LOCAL_TD) {
        Some(rest) if rest.starts_with('/') => format!("{}{rest}", td.as_str()),
        _ => p.to_owned(),
    }
}
