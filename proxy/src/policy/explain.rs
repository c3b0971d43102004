//! Human-readable explanation of a decision (`meshid policy explain`).

use super::eval::tcp_mode;
use super::matcher::{Attrs, Miss, Rule};
use super::request::{Protocol, Request};
use super::set::PolicySet;
use std::fmt::Write;

/// Explains how `set` decides `req`: every policy, every rule, why it did or
/// did not match, and the final decision.
pub fn explain(set: &PolicySet, req: &Request<'_>) -> String {
    let a = Attrs::new(req);
    let mut out = String::new();
    let opt = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let _ = writeln!(
        out,
        "request: peer={} port={} protocol={} method={} path={} host={}",
        req.peer.map_or("(unauthenticated)", |p| p.as_str()),
        req.port,
        match req.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Http => "HTTP",
        },
        opt(req.method),
        opt(req.path),
        opt(req.host),
    );
    let mtls = set.peer_authentication().decision(req.port);
    if let Some(by) = &mtls.by {
        let _ = writeln!(
            out,
            "peer authentication of port {}: {} (set by {by:?})",
            req.port, mtls.mode
        );
    }
    if set.policies().is_empty() {
        let _ = writeln!(out, "no policies");
    }
    for p in set.policies() {
        let _ = write!(out, "policy {:?} ({}): ", p.name(), p.action());
        if p.rules.is_empty() {
            let _ = writeln!(out, "no rules, matches nothing");
            continue;
        }
        let mode = tcp_mode(p.action);
        let first = p.rules.iter().position(|r| r.check(&a, mode).is_ok());
        match first {
            Some(i) => {
                let _ = writeln!(out, "MATCHED by rules[{i}]");
            }
            None => {
                let _ = writeln!(out, "no rule matched");
            }
        }
        for (i, rule) in p.rules.iter().enumerate() {
            match rule.check(&a, mode) {
                Ok(()) => {
                    let _ = writeln!(out, "  rules[{i}]: matched");
                }
                Err(miss) => {
                    let _ = writeln!(out, "  rules[{i}]: {}", describe(rule, miss, &a));
                }
            }
        }
    }
    let d = set.evaluate(req);
    let _ = writeln!(out, "decision: {d}");
    if !d.audited.is_empty() {
        let names: Vec<&str> = d.audited.iter().map(|n| &**n).collect();
        let _ = writeln!(out, "audited by: {}", names.join(", "));
    }
    out
}

/// Says why `rule` missed, naming the field that failed in each alternative.
fn describe(rule: &Rule, miss: Miss, a: &Attrs<'_>) -> String {
    match miss {
        Miss::HttpOnTcp => {
            "no match: ALLOW rule uses HTTP-only fields and this is a TCP connection".into()
        }
        Miss::From => {
            let parts: Vec<String> = rule
                .from
                .iter()
                .enumerate()
                .filter_map(|(j, s)| s.check(a).err().map(|f| format!("from[{j}] failed {f}")))
                .collect();
            format!("no match: no source matched ({})", parts.join("; "))
        }
        Miss::To => {
            let parts: Vec<String> = rule
                .to
                .iter()
                .enumerate()
                .filter_map(|(j, o)| o.check(a).err().map(|f| format!("to[{j}] failed {f}")))
                .collect();
            format!("no match: no operation matched ({})", parts.join("; "))
        }
        Miss::When(j) => {
            let field = rule
                .when
                .get(j)
                .and_then(|c| c.check(a).err())
                .unwrap_or("values");
            format!("no match: when[{j}] failed {field}")
        }
    }
}
