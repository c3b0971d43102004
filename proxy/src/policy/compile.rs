//! Validation of a parsed policy file and compilation into matchers.

use super::error::{PolicyError, Warning};
use super::labels::Selector;
use super::matcher::{
    Condition, ConditionKey, Field, Operation, PortField, Rule, Source, strip_scheme,
};
use super::model::{
    ConditionDoc, OperationDoc, PolicyDoc, PolicyFile, PortDoc, RuleDoc, SourceDoc,
};
use super::pattern::Pattern;
use super::peer_auth::{PeerAuth, compile_all};
use super::set::{Action, Policy};
use http::HeaderName;
use std::collections::HashSet;
use std::sync::Arc;

/// Most rules a policy file may hold, over all policies.
pub const MAX_RULES: usize = 10_000;
/// Longest policy name accepted.
pub(crate) const MAX_NAME_LEN: usize = 253;

/// What a policy file compiles to.
pub(crate) struct Compiled {
    pub policies: Vec<Policy>,
    pub peer_auth: Vec<PeerAuth>,
    pub warnings: Vec<Warning>,
}

/// Validates and compiles every policy and peer authentication of a file.
///
/// A file without policies is refused ([`PolicyError::NoPolicies`]): it
/// would allow everything, and is what a truncated write leaves behind.
pub(crate) fn compile(file: PolicyFile) -> Result<Compiled, PolicyError> {
    let policies = match file.policies {
        Some(p) if !p.is_empty() => p,
        _ => return Err(PolicyError::NoPolicies),
    };
    let count: usize = policies.iter().map(|p| p.rules.len()).sum();
    if count > MAX_RULES {
        return Err(PolicyError::TooManyRules {
            count,
            max: MAX_RULES,
        });
    }
    let mut names = HashSet::new();
    let mut warnings = Vec::new();
    let mut out = Vec::with_capacity(policies.len());
    for (i, doc) in policies.into_iter().enumerate() {
        let policy = compile_policy(i, doc, &mut warnings)?;
        if !names.insert(policy.name.clone()) {
            return Err(PolicyError::DuplicateName(policy.name.to_string()));
        }
        out.push(policy);
    }
    let peer_auth = compile_all(file.peer_authentication, &mut warnings)?;
    Ok(Compiled {
        policies: out,
        peer_auth,
        warnings,
    })
}

/// Where we are, for error messages.
pub(crate) struct Ctx<'a> {
    /// The policy (or peer authentication item) being compiled.
    pub(crate) policy: &'a str,
}

impl Ctx<'_> {
    pub(crate) fn err(&self, field: impl Into<String>, problem: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            policy: self.policy.to_owned(),
            field: field.into(),
            problem: problem.into(),
        }
    }
}

fn compile_policy(
    index: usize,
    doc: PolicyDoc,
    warnings: &mut Vec<Warning>,
) -> Result<Policy, PolicyError> {
    let fallback = format!("#{index}");
    let name_ok = !doc.name.is_empty() && doc.name.len() <= MAX_NAME_LEN;
    let ctx = Ctx {
        policy: if name_ok { &doc.name } else { &fallback },
    };
    if !name_ok {
        return Err(ctx.err(
            "name",
            format!("policy names must be 1 to {MAX_NAME_LEN} characters long"),
        ));
    }
    let action = match doc.action.as_str() {
        "ALLOW" => Action::Allow,
        "DENY" => Action::Deny,
        "AUDIT" => Action::Audit,
        other => {
            return Err(ctx.err(
                "action",
                format!("unknown action {other:?}; use ALLOW, DENY or AUDIT"),
            ));
        }
    };
    let selector = doc
        .selector
        .map(|s| Selector::new(s.match_labels))
        .transpose()
        .map_err(|problem| ctx.err("selector.matchLabels", problem))?;
    let rules = doc
        .rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| compile_rule(&ctx, i, r))
        .collect::<Result<Box<[Rule]>, _>>()?;
    if rules.is_empty() {
        let message = match action {
            Action::Allow => {
                "policy has no rules: it allows nothing, so traffic not allowed by another ALLOW policy is denied"
            }
            Action::Deny | Action::Audit => {
                "policy has no rules: it matches nothing and has no effect"
            }
        };
        warnings.push(Warning {
            policy: doc.name.clone(),
            rule_index: None,
            message: message.into(),
        });
    }
    Ok(Policy {
        name: Arc::from(doc.name),
        selector,
        action,
        rules,
    })
}

fn compile_rule(ctx: &Ctx<'_>, i: usize, doc: RuleDoc) -> Result<Rule, PolicyError> {
    let at = format!("rules[{i}]");
    let from = doc
        .from
        .into_iter()
        .enumerate()
        .map(|(j, f)| compile_source(ctx, &format!("{at}.from[{j}].source"), f.source))
        .collect::<Result<Box<[_]>, _>>()?;
    let to = doc
        .to
        .into_iter()
        .enumerate()
        .map(|(j, t)| compile_operation(ctx, &format!("{at}.to[{j}].operation"), t.operation))
        .collect::<Result<Box<[_]>, _>>()?;
    let when = doc
        .when
        .into_iter()
        .enumerate()
        .map(|(j, c)| compile_condition(ctx, &format!("{at}.when[{j}]"), c))
        .collect::<Result<Box<[_]>, _>>()?;
    let http_only = to.iter().any(Operation::http_only) || when.iter().any(Condition::http_only);
    Ok(Rule {
        from,
        to,
        when,
        http_only,
    })
}

fn compile_source(ctx: &Ctx<'_>, at: &str, doc: SourceDoc) -> Result<Source, PolicyError> {
    let ids = |values: Vec<String>, name: &str| {
        patterns(ctx, &format!("{at}.{name}"), values, |s| {
            strip_scheme(s).to_owned()
        })
    };
    let source = Source {
        principals: Field {
            yes: ids(doc.principals, "principals")?,
            no: ids(doc.not_principals, "notPrincipals")?,
        },
        namespaces: Field {
            yes: ids(doc.namespaces, "namespaces")?,
            no: ids(doc.not_namespaces, "notNamespaces")?,
        },
        trust_domains: Field {
            yes: ids(doc.trust_domains, "trustDomains")?,
            no: ids(doc.not_trust_domains, "notTrustDomains")?,
        },
    };
    Ok(source)
}

fn compile_operation(ctx: &Ctx<'_>, at: &str, doc: OperationDoc) -> Result<Operation, PolicyError> {
    let plain = |values: Vec<String>, name: &str| {
        patterns(ctx, &format!("{at}.{name}"), values, |s| s.to_owned())
    };
    Ok(Operation {
        ports: PortField {
            yes: ports(ctx, &format!("{at}.ports"), &doc.ports)?,
            no: ports(ctx, &format!("{at}.notPorts"), &doc.not_ports)?,
        },
        methods: Field {
            yes: plain(doc.methods, "methods")?,
            no: plain(doc.not_methods, "notMethods")?,
        },
        paths: Field {
            yes: plain(doc.paths, "paths")?,
            no: plain(doc.not_paths, "notPaths")?,
        },
        hosts: Field {
            yes: plain(doc.hosts, "hosts")?,
            no: plain(doc.not_hosts, "notHosts")?,
        },
    })
}

fn compile_condition(ctx: &Ctx<'_>, at: &str, doc: ConditionDoc) -> Result<Condition, PolicyError> {
    if doc.values.is_empty() && doc.not_values.is_empty() {
        return Err(ctx.err(
            at,
            "condition has neither values nor notValues; add at least one",
        ));
    }
    let key = parse_key(&doc.key).ok_or_else(|| {
        ctx.err(
            format!("{at}.key"),
            format!(
                "unsupported key {:?}; use request.headers[<name>], source.principal, \
                 source.namespace or destination.port",
                doc.key
            ),
        )
    })?;
    let mut cond = Condition {
        key,
        values: Field::default(),
        ports: PortField::default(),
    };
    match cond.key {
        ConditionKey::Port => {
            let parse = |v: Vec<String>| v.into_iter().map(PortDoc).collect::<Vec<_>>();
            cond.ports = PortField {
                yes: ports(ctx, &format!("{at}.values"), &parse(doc.values))?,
                no: ports(ctx, &format!("{at}.notValues"), &parse(doc.not_values))?,
            };
        }
        ConditionKey::Principal => {
            let f = |s: &str| strip_scheme(s).to_owned();
            cond.values = Field {
                yes: patterns(ctx, &format!("{at}.values"), doc.values, f)?,
                no: patterns(ctx, &format!("{at}.notValues"), doc.not_values, f)?,
            };
        }
        ConditionKey::Header(_) | ConditionKey::Namespace => {
            let f = |s: &str| s.to_owned();
            cond.values = Field {
                yes: patterns(ctx, &format!("{at}.values"), doc.values, f)?,
                no: patterns(ctx, &format!("{at}.notValues"), doc.not_values, f)?,
            };
        }
    }
    Ok(cond)
}

fn parse_key(key: &str) -> Option<ConditionKey> {
    match key {
        "source.principal" => Some(ConditionKey::Principal),
        "source.namespace" => Some(ConditionKey::Namespace),
        "destination.port" => Some(ConditionKey::Port),
        _ => {
            let name = key.strip_prefix("request.headers[")?.strip_suffix(']')?;
            HeaderName::from_bytes(name.as_bytes())
                .ok()
                .map(ConditionKey::Header)
        }
    }
}

fn patterns(
    ctx: &Ctx<'_>,
    at: &str,
    values: Vec<String>,
    normalize: impl Fn(&str) -> String,
) -> Result<Box<[Pattern]>, PolicyError> {
    values
        .iter()
        .enumerate()
        .map(|(k, v)| {
            Pattern::parse(&normalize(v))
                .map_err(|e| ctx.err(format!("{at}[{k}]"), format!("bad value {v:?}: {e}")))
        })
        .collect()
}

fn ports(ctx: &Ctx<'_>, at: &str, values: &[PortDoc]) -> Result<Box<[u16]>, PolicyError> {
    values
        .iter()
        .enumerate()
        .map(|(k, v)| port_number(ctx, &format!("{at}[{k}]"), v))
        .collect()
}

/// A port from 1 to 65535; `at` names the field in the error.
pub(crate) fn port_number(
    ctx: &Ctx<'_>,
    at: &str,
    PortDoc(v): &PortDoc,
) -> Result<u16, PolicyError> {
    match v.trim().parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(ctx.err(
            at,
            format!("bad port {v:?}: expected a number from 1 to 65535"),
        )),
    }
}
