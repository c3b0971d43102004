//! Compiled rules and the allocation-free code that matches them.

use super::pattern::Pattern;
use super::request::{HeaderSource, Protocol, Request};
use http::HeaderName;

/// A string attribute constraint: `xs` (any must match) and `notXs` (none may).
#[derive(Debug, Default)]
pub(crate) struct Field {
    pub yes: Box<[Pattern]>,
    pub no: Box<[Pattern]>,
}

/// A port constraint: `ports` and `notPorts`.
#[derive(Debug, Default)]
pub(crate) struct PortField {
    pub yes: Box<[u16]>,
    pub no: Box<[u16]>,
}

/// A compiled `from[].source`.
#[derive(Debug, Default)]
pub(crate) struct Source {
    pub principals: Field,
    pub namespaces: Field,
    pub trust_domains: Field,
}

/// A compiled `to[].operation`.
#[derive(Debug, Default)]
pub(crate) struct Operation {
    pub ports: PortField,
    pub methods: Field,
    pub paths: Field,
    pub hosts: Field,
}

/// What a `when` condition looks at.
#[derive(Debug)]
pub(crate) enum ConditionKey {
    /// `request.headers[name]` (HTTP only).
    Header(HeaderName),
    /// `source.principal`.
    Principal,
    /// `source.namespace`.
    Namespace,
    /// `destination.port`.
    Port,
}

/// A compiled `when[]` entry.
#[derive(Debug)]
pub(crate) struct Condition {
    pub key: ConditionKey,
    pub values: Field,
    /// Parsed values when the key is `destination.port`.
    pub ports: PortField,
}

/// A compiled rule.
#[derive(Debug, Default)]
pub(crate) struct Rule {
    pub from: Box<[Source]>,
    pub to: Box<[Operation]>,
    pub when: Box<[Condition]>,
    /// True if any part of the rule needs HTTP attributes.
    pub http_only: bool,
}

/// How HTTP-only conditions behave on a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TcpHttp {
    /// ALLOW: a rule that needs HTTP attributes never matches TCP.
    RuleFails,
    /// DENY/AUDIT: HTTP-only conditions are ignored; the rest must match.
    ConditionsIgnored,
}

/// Which part of a rule did not match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Miss {
    /// No `from` source matched.
    From,
    /// No `to` operation matched.
    To,
    /// `when[i]` did not match.
    When(usize),
    /// An ALLOW rule with HTTP-only fields on a TCP connection.
    HttpOnTcp,
}

/// Request attributes derived once per evaluation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attrs<'a> {
    pub req: &'a Request<'a>,
    /// Peer ID without `spiffe://`.
    pub principal: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub trust_domain: Option<&'a str>,
    pub path: Option<&'a str>,
    pub tcp: bool,
}

// === impl Attrs ===

impl<'a> Attrs<'a> {
    pub(crate) fn new(req: &'a Request<'a>) -> Self {
        let principal = req.peer.map(|id| strip_scheme(id.as_str()));
        let namespace = req.peer.and_then(|id| namespace_of(id.path()));
        Self {
            req,
            principal,
            namespace,
            trust_domain: req.peer.map(|id| id.trust_domain_str()),
            path: req.path_only(),
            tcp: req.protocol == Protocol::Tcp,
        }
    }
}

/// Removes a leading `spiffe://` (any case) from an ID or pattern.
pub(crate) fn strip_scheme(s: &str) -> &str {
    const SCHEME: &str = "spiffe://";
    match s.get(..SCHEME.len()) {
        Some(p) if p.eq_ignore_ascii_case(SCHEME) => &s[SCHEME.len()..],
        _ => s,
    }
}

/// The namespace of a Kubernetes-style SPIFFE ID path `/ns/<ns>/sa/<sa>`.
pub(crate) fn namespace_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/ns/")?;
    let ns = rest.split_once('/').map_or(rest, |(ns, _)| ns);
    (!ns.is_empty()).then_some(ns)
}

// === impl Field ===

impl Field {
    /// True if neither `xs` nor `notXs` is set.
    pub(crate) fn is_empty(&self) -> bool {
        self.yes.is_empty() && self.no.is_empty()
    }

    /// Checks `value`; on failure names the field (`yes_name` or `no_name`).
    #[inline]
    pub(crate) fn check(
        &self,
        value: Option<&str>,
        fold_case: bool,
        names: (&'static str, &'static str),
    ) -> Result<(), &'static str> {
        let hit = |p: &Pattern, v: &str| {
            if fold_case {
                p.matches_ignore_ascii_case(v)
            } else {
                p.matches(v)
            }
        };
        if !self.yes.is_empty() {
            match value {
                Some(v) if self.yes.iter().any(|p| hit(p, v)) => {}
                _ => return Err(names.0),
            }
        }
        if let Some(v) = value
            && self.no.iter().any(|p| hit(p, v))
        {
            return Err(names.1);
        }
        Ok(())
    }
}

// === impl PortField ===

impl PortField {
    /// Checks `port`; on failure names the field.
    #[inline]
    pub(crate) fn check(
        &self,
        port: u16,
        names: (&'static str, &'static str),
    ) -> Result<(), &'static str> {
        if !self.yes.is_empty() && !self.yes.contains(&port) {
            return Err(names.0);
        }
        if self.no.contains(&port) {
            return Err(names.1);
        }
        Ok(())
    }
}

// === impl Source ===

impl Source {
    /// Checks every set field; on failure names the first field that failed.
    pub(crate) fn check(&self, a: &Attrs<'_>) -> Result<(), &'static str> {
        self.principals
            .check(a.principal, false, ("principals", "notPrincipals"))?;
        self.namespaces
            .check(a.namespace, false, ("namespaces", "notNamespaces"))?;
        self.trust_domains
            .check(a.trust_domain, false, ("trustDomains", "notTrustDomains"))
    }
}

// === impl Operation ===

impl Operation {
    /// True if the operation uses methods, paths or hosts.
    pub(crate) fn http_only(&self) -> bool {
        !(self.methods.is_empty() && self.paths.is_empty() && self.hosts.is_empty())
    }

    /// Checks every set field; HTTP fields are skipped on TCP (the caller has
    /// already decided what HTTP fields on TCP mean for this rule).
    pub(crate) fn check(&self, a: &Attrs<'_>) -> Result<(), &'static str> {
        self.ports.check(a.req.port, ("ports", "notPorts"))?;
        if a.tcp {
            return Ok(());
        }
        self.methods
            .check(a.req.method, false, ("methods", "notMethods"))?;
        self.paths.check(a.path, false, ("paths", "notPaths"))?;
        self.hosts.check(a.req.host, true, ("hosts", "notHosts"))
    }
}

// === impl Condition ===

impl Condition {
    /// True if the condition needs HTTP attributes.
    pub(crate) fn http_only(&self) -> bool {
        matches!(self.key, ConditionKey::Header(_))
    }

    /// Checks the condition; HTTP-only conditions pass on TCP (see [`Operation::check`]).
    pub(crate) fn check(&self, a: &Attrs<'_>) -> Result<(), &'static str> {
        const NAMES: (&str, &str) = ("values", "notValues");
        match &self.key {
            ConditionKey::Header(_) if a.tcp => Ok(()),
            ConditionKey::Header(name) => {
                self.values
                    .check(HeaderSource::header(a.req.headers, name), false, NAMES)
            }
            ConditionKey::Principal => self.values.check(a.principal, false, NAMES),
            ConditionKey::Namespace => self.values.check(a.namespace, false, NAMES),
            ConditionKey::Port => self.ports.check(a.req.port, NAMES),
        }
    }
}

// === impl Rule ===

impl Rule {
    /// Checks the rule: `from` (any), `to` (any) and every `when` must match.
    #[inline]
    pub(crate) fn check(&self, a: &Attrs<'_>, mode: TcpHttp) -> Result<(), Miss> {
        if a.tcp && self.http_only && mode == TcpHttp::RuleFails {
            return Err(Miss::HttpOnTcp);
        }
        if !self.from.is_empty() && !self.from.iter().any(|s| s.check(a).is_ok()) {
            return Err(Miss::From);
        }
        if !self.to.is_empty() && !self.to.iter().any(|o| o.check(a).is_ok()) {
            return Err(Miss::To);
        }
        for (i, c) in self.when.iter().enumerate() {
            if c.check(a).is_err() {
                return Err(Miss::When(i));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_comes_from_the_kubernetes_path_shape() {
        assert_eq!(namespace_of("/ns/default/sa/x"), Some("default"));
        assert_eq!(namespace_of("/ns/default"), Some("default"));
        assert_eq!(namespace_of("/ns//sa/x"), None);
        assert_eq!(namespace_of("/x/ns/default/sa/y"), None);
        assert_eq!(namespace_of(""), None);
    }

    #[test]
    fn scheme_is_stripped_in_any_case() {
        assert_eq!(strip_scheme("spiffe://td/x"), "td/x");
        assert_eq!(strip_scheme("SPIFFE://td/x"), "td/x");
        assert_eq!(strip_scheme("td/x"), "td/x");
        assert_eq!(strip_scheme("*/sa/x"), "*/sa/x");
    }
}
