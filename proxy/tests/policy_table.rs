//! Table-driven tests for every rule of the policy engine.
#![allow(clippy::unwrap_used)]

use meshid_identity::SpiffeId;
use meshid_proxy::policy::{PolicyError, PolicySet, Reason, Request, explain};

/// A request in compact form.
/// HTTP method, path, host and headers.
type Http = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

#[derive(Clone, Copy)]
struct Req {
    peer: Option<&'static str>,
    port: u16,
    /// `None` = TCP; `Some((method, path, host, headers))` = HTTP.
    http: Option<Http>,
}

const SLEEP: &str = "spiffe://cluster.local/ns/default/sa/sleep";
const PAY: &str = "spiffe://cluster.local/ns/payments/sa/api";
const OTHER_TD: &str = "spiffe://partner.example/ns/default/sa/sleep";
const NO_NS: &str = "spiffe://cluster.local/workload/x";

fn http(peer: &'static str, method: &'static str, path: &'static str) -> Req {
    Req {
        peer: Some(peer),
        port: 8080,
        http: Some((method, path, "api.local", &[])),
    }
}
fn tcp(peer: Option<&'static str>, port: u16) -> Req {
    Req {
        peer,
        port,
        http: None,
    }
}

fn decide(set: &PolicySet, r: Req) -> meshid_proxy::Decision {
    let id = r.peer.map(|p| SpiffeId::parse(p).unwrap());
    let hs: &[(&str, &str)] = r.http.map_or(&[], |h| h.3);
    let req = match r.http {
        None => Request::tcp(id.as_ref(), r.port),
        Some((m, p, h, _)) => Request::http(id.as_ref(), r.port, m, p)
            .with_host(h)
            .with_headers(&hs),
    };
    set.evaluate(&req)
}

fn allow(body: &str) -> String {
    format!("policies:\n- name: p\n  action: ALLOW\n  rules:\n  - {body}\n")
}
fn deny(body: &str) -> String {
    format!("policies:\n- name: p\n  action: DENY\n  rules:\n  - {body}\n")
}

/// (case name, policy yaml, request, expected allowed)
fn check(cases: &[(&str, String, Req, bool)]) {
    for (name, yaml, req, want) in cases {
        let (set, _) = PolicySet::from_yaml(yaml).unwrap_or_else(|e| panic!("{name}: {e}"));
        let d = decide(&set, *req);
        assert_eq!(d.allowed, *want, "case {name}: {d:?}\n{}", yaml);
    }
}

#[test]
fn principal_matching_forms() {
    let src = |p: &str| allow(&format!("from: [{{source: {{principals: [\"{p}\"]}}}}]"));
    check(&[
        (
            "exact without scheme",
            src("cluster.local/ns/default/sa/sleep"),
            http(SLEEP, "GET", "/"),
            true,
        ),
        (
            "exact with scheme",
            src("spiffe://cluster.local/ns/default/sa/sleep"),
            http(SLEEP, "GET", "/"),
            true,
        ),
        (
            "exact other",
            src("cluster.local/ns/default/sa/sleep"),
            http(PAY, "GET", "/"),
            false,
        ),
        (
            "prefix",
            src("cluster.local/ns/default/*"),
            http(SLEEP, "GET", "/"),
            true,
        ),
        (
            "prefix with scheme",
            src("spiffe://cluster.local/ns/default/*"),
            http(SLEEP, "GET", "/"),
            true,
        ),
        (
            "prefix miss",
            src("cluster.local/ns/default/*"),
            http(PAY, "GET", "/"),
            false,
        ),
        (
            "suffix",
            src("*/sa/sleep"),
            http(OTHER_TD, "GET", "/"),
            true,
        ),
        (
            "suffix miss",
            src("*/sa/sleep"),
            http(PAY, "GET", "/"),
            false,
        ),
        ("any authenticated", src("*"), http(PAY, "GET", "/"), true),
        (
            "any rejects unauthenticated",
            src("*"),
            tcp(None, 8080),
            false,
        ),
        (
            "exact rejects unauthenticated",
            src("cluster.local/ns/default/sa/sleep"),
            tcp(None, 8080),
            false,
        ),
    ]);
}

#[test]
fn not_principals_and_unauthenticated_peers() {
    let not_any = deny("from: [{source: {notPrincipals: [\"*\"]}}]");
    let not_sleep =
        allow("from: [{source: {notPrincipals: [\"cluster.local/ns/default/sa/sleep\"]}}]");
    check(&[
        (
            "deny plaintext: unauthenticated denied",
            not_any.clone(),
            tcp(None, 80),
            false,
        ),
        (
            "deny plaintext: authenticated allowed",
            not_any,
            tcp(Some(PAY), 80),
            true,
        ),
        (
            "notPrincipals excludes",
            not_sleep.clone(),
            http(SLEEP, "GET", "/"),
            false,
        ),
        (
            "notPrincipals others",
            not_sleep.clone(),
            http(PAY, "GET", "/"),
            true,
        ),
        (
            "notPrincipals passes absent peer",
            not_sleep,
            tcp(None, 80),
            true,
        ),
    ]);
}

#[test]
fn namespaces_and_trust_domains() {
    let ns = |f: &str, v: &str| allow(&format!("from: [{{source: {{{f}: [\"{v}\"]}}}}]"));
    check(&[
        (
            "ns exact",
            ns("namespaces", "default"),
            http(SLEEP, "GET", "/"),
            true,
        ),
        (
            "ns exact miss",
            ns("namespaces", "default"),
            http(PAY, "GET", "/"),
            false,
        ),
        (
            "ns prefix",
            ns("namespaces", "pay*"),
            http(PAY, "GET", "/"),
            true,
        ),
        (
            "ns suffix",
            ns("namespaces", "*ments"),
            http(PAY, "GET", "/"),
            true,
        ),
        ("ns any", ns("namespaces", "*"), http(PAY, "GET", "/"), true),
        (
            "ns any needs /ns/ path",
            ns("namespaces", "*"),
            http(NO_NS, "GET", "/"),
            false,
        ),
        ("ns needs peer", ns("namespaces", "*"), tcp(None, 1), false),
        (
            "notNamespaces",
            ns("notNamespaces", "default"),
            http(SLEEP, "GET", "/"),
            false,
        ),
        (
            "notNamespaces other",
            ns("notNamespaces", "default"),
            http(PAY, "GET", "/"),
            true,
        ),
        (
            "td exact",
            ns("trustDomains", "cluster.local"),
            http(SLEEP, "GET", "/"),
            true,
        ),
        (
            "td with scheme",
            ns("trustDomains", "spiffe://cluster.local"),
            http(SLEEP, "GET", "/"),
            true,
        ),
        (
            "td miss",
            ns("trustDomains", "cluster.local"),
            http(OTHER_TD, "GET", "/"),
            false,
        ),
        (
            "td suffix",
            ns("trustDomains", "*.example"),
            http(OTHER_TD, "GET", "/"),
            true,
        ),
        (
            "notTrustDomains",
            ns("notTrustDomains", "partner.example"),
            http(OTHER_TD, "GET", "/"),
            false,
        ),
    ]);
}

#[test]
fn operation_fields() {
    let op = |f: &str, v: &str| allow(&format!("to: [{{operation: {{{f}: [{v}]}}}}]"));
    let hosted = |host| Req {
        peer: Some(SLEEP),
        port: 8080,
        http: Some(("GET", "/", host, &[])),
    };
    check(&[
        (
            "port int",
            op("ports", "8080"),
            http(SLEEP, "GET", "/"),
            true,
        ),
        (
            "port string",
            op("ports", "\"8080\""),
            http(SLEEP, "GET", "/"),
            true,
        ),
        (
            "port miss",
            op("ports", "9090"),
            http(SLEEP, "GET", "/"),
            false,
        ),
        (
            "notPorts",
            op("notPorts", "8080"),
            http(SLEEP, "GET", "/"),
            false,
        ),
        (
            "ports on tcp",
            op("ports", "5432"),
            tcp(Some(SLEEP), 5432),
            true,
        ),
        (
            "method exact",
            op("methods", "GET"),
            http(SLEEP, "GET", "/"),
            true,
        ),
        (
            "method case-sensitive",
            op("methods", "get"),
            http(SLEEP, "GET", "/"),
            false,
        ),
        (
            "method prefix",
            op("methods", "\"P*\""),
            http(SLEEP, "POST", "/"),
            true,
        ),
        (
            "notMethods",
            op("notMethods", "DELETE"),
            http(SLEEP, "DELETE", "/"),
            false,
        ),
        (
            "path exact",
            op("paths", "/a"),
            http(SLEEP, "GET", "/a"),
            true,
        ),
        (
            "path ignores query",
            op("paths", "/a"),
            http(SLEEP, "GET", "/a?x=1"),
            true,
        ),
        (
            "path prefix",
            op("paths", "\"/api/*\""),
            http(SLEEP, "GET", "/api/v1"),
            true,
        ),
        (
            "path prefix miss",
            op("paths", "\"/api/*\""),
            http(SLEEP, "GET", "/apix"),
            false,
        ),
        (
            "path suffix",
            op("paths", "\"*.png\""),
            http(SLEEP, "GET", "/x.png"),
            true,
        ),
        (
            "path any",
            op("paths", "\"*\""),
            http(SLEEP, "GET", "/x"),
            true,
        ),
        (
            "notPaths",
            op("notPaths", "\"/admin*\""),
            http(SLEEP, "GET", "/admin/x"),
            false,
        ),
        (
            "host exact, case-insensitive",
            op("hosts", "API.local"),
            hosted("api.LOCAL"),
            true,
        ),
        (
            "host suffix",
            op("hosts", "\"*.local\""),
            hosted("api.local"),
            true,
        ),
        (
            "host miss",
            op("hosts", "\"*.example\""),
            hosted("api.local"),
            false,
        ),
        (
            "notHosts",
            op("notHosts", "api.local"),
            hosted("api.local"),
            false,
        ),
    ]);
}

#[test]
fn when_conditions() {
    let w = |k: &str, f: &str, v: &str| allow(&format!("when: [{{key: \"{k}\", {f}: [\"{v}\"]}}]"));
    let with_h = |hs: &'static [(&'static str, &'static str)]| Req {
        peer: Some(SLEEP),
        port: 8080,
        http: Some(("GET", "/", "h", hs)),
    };
    check(&[
        (
            "header value",
            w("request.headers[x-foo]", "values", "bar"),
            with_h(&[("X-Foo", "bar")]),
            true,
        ),
        (
            "header value miss",
            w("request.headers[x-foo]", "values", "bar"),
            with_h(&[("x-foo", "baz")]),
            false,
        ),
        (
            "header absent",
            w("request.headers[x-foo]", "values", "*"),
            with_h(&[]),
            false,
        ),
        (
            "header present",
            w("request.headers[x-foo]", "values", "*"),
            with_h(&[("x-foo", "")]),
            true,
        ),
        (
            "header prefix",
            w("request.headers[x-foo]", "values", "ba*"),
            with_h(&[("x-foo", "bar")]),
            true,
        ),
        (
            "header notValues",
            w("request.headers[x-foo]", "notValues", "bar"),
            with_h(&[("x-foo", "bar")]),
            false,
        ),
        (
            "header notValues absent",
            w("request.headers[x-foo]", "notValues", "bar"),
            with_h(&[]),
            true,
        ),
        (
            "source.principal",
            w("source.principal", "values", "cluster.local/ns/default/*"),
            with_h(&[]),
            true,
        ),
        (
            "source.namespace",
            w("source.namespace", "values", "payments"),
            with_h(&[]),
            false,
        ),
        (
            "destination.port",
            w("destination.port", "values", "8080"),
            with_h(&[]),
            true,
        ),
    ]);
}

#[test]
fn and_or_structure() {
    // Within a source: AND of fields; each field OR over values.
    let and = allow(
        "from: [{source: {principals: [\"*/sa/sleep\", \"*/sa/api\"], namespaces: [default]}}]",
    );
    // Within `from`: OR of sources.
    let or = allow("from: [{source: {namespaces: [default]}}, {source: {namespaces: [payments]}}]");
    // Within a rule: AND of from, to, when.
    let rule = allow(
        "{from: [{source: {namespaces: [default]}}], to: [{operation: {methods: [GET]}}], \
         when: [{key: \"request.headers[x-a]\", values: [\"1\"]}]}",
    );
    let hdr = |m: &'static str, hs: &'static [(&'static str, &'static str)], peer| Req {
        peer: Some(peer),
        port: 1,
        http: Some((m, "/", "h", hs)),
    };
    // Two rules in a policy: OR.
    let two = "policies:\n- name: p\n  action: ALLOW\n  rules:\n  - from: [{source: {namespaces: [default]}}]\n  - to: [{operation: {ports: [9]}}]\n".to_owned();
    check(&[
        ("and: both", and.clone(), http(SLEEP, "GET", "/"), true),
        (
            "and: second value, wrong ns",
            and,
            http(PAY, "GET", "/"),
            false,
        ),
        ("or: first", or.clone(), http(SLEEP, "GET", "/"), true),
        ("or: second", or.clone(), http(PAY, "GET", "/"), true),
        (
            "or: same ns, other trust domain",
            or.clone(),
            http(OTHER_TD, "GET", "/x"),
            true,
        ),
        ("or: neither", or, http(NO_NS, "GET", "/x"), false),
        (
            "rule: all",
            rule.clone(),
            hdr("GET", &[("x-a", "1")], SLEEP),
            true,
        ),
        (
            "rule: wrong method",
            rule.clone(),
            hdr("PUT", &[("x-a", "1")], SLEEP),
            false,
        ),
        (
            "rule: wrong header",
            rule.clone(),
            hdr("GET", &[("x-a", "2")], SLEEP),
            false,
        ),
        (
            "rule: wrong source",
            rule,
            hdr("GET", &[("x-a", "1")], PAY),
            false,
        ),
        ("two rules: first", two.clone(), tcp(Some(SLEEP), 1), true),
        ("two rules: second", two.clone(), tcp(Some(PAY), 9), true),
        ("two rules: none", two, tcp(Some(PAY), 1), false),
    ]);
}

#[test]
fn decision_order_and_reasons() {
    let yaml = r#"
policies:
  - name: audit-all
    action: AUDIT
    rules: [{}]
  - name: allow-default
    action: ALLOW
    rules:
      - from: [{source: {namespaces: [default]}}]
  - name: deny-admin
    action: DENY
    rules:
      - to: [{operation: {paths: ["/nothing"]}}]
      - to: [{operation: {paths: ["/admin*"]}}]
"#;
    let (set, _) = PolicySet::from_yaml(yaml).unwrap();
    let d = decide(&set, http(SLEEP, "GET", "/admin/x"));
    assert!(!d.allowed, "DENY beats ALLOW");
    assert_eq!(d.policy.as_deref(), Some("deny-admin"));
    assert_eq!(d.rule_index, Some(1));
    assert_eq!(d.reason, Reason::DeniedByPolicy);
    assert_eq!(
        d.audited.iter().map(|a| &**a).collect::<Vec<_>>(),
        ["audit-all"]
    );

    let d = decide(&set, http(SLEEP, "GET", "/ok"));
    assert!(d.allowed);
    assert_eq!(d.policy.as_deref(), Some("allow-default"));
    assert_eq!((d.rule_index, d.reason), (Some(0), Reason::AllowedByPolicy));

    let d = decide(&set, http(PAY, "GET", "/ok"));
    assert!(!d.allowed, "ALLOW exists, none matched");
    assert_eq!(
        (d.policy, d.rule_index, d.reason),
        (None, None, Reason::NoAllowMatched)
    );
    assert_eq!(d.audited.len(), 1, "AUDIT reported even on deny");
}

#[test]
fn defaults_empty_policies_and_audit() {
    let cases = [
        (
            "only deny, not matching: allow",
            "policies: [{name: d, action: DENY, rules: [{to: [{operation: {ports: [1]}}]}]}]",
            true,
            Reason::NoAllowPolicies,
        ),
        (
            "ALLOW without rules = deny all",
            "policies: [{name: x, action: ALLOW}]",
            false,
            Reason::NoAllowMatched,
        ),
        (
            "ALLOW with rules: [] = deny all",
            "policies: [{name: x, action: ALLOW, rules: []}]",
            false,
            Reason::NoAllowMatched,
        ),
        (
            "empty rule matches all",
            "policies: [{name: x, action: ALLOW, rules: [{}]}]",
            true,
            Reason::AllowedByPolicy,
        ),
        (
            "DENY with empty rule denies all",
            "policies: [{name: x, action: DENY, rules: [{}]}]",
            false,
            Reason::DeniedByPolicy,
        ),
        (
            "DENY without rules: no effect",
            "policies: [{name: x, action: DENY}]",
            true,
            Reason::NoAllowPolicies,
        ),
        (
            "AUDIT does not decide",
            "policies: [{name: x, action: AUDIT, rules: [{}]}]",
            true,
            Reason::NoAllowPolicies,
        ),
        (
            "AUDIT does not allow",
            "policies: [{name: a, action: AUDIT, rules: [{}]}, {name: x, action: ALLOW}]",
            false,
            Reason::NoAllowMatched,
        ),
    ];
    for (name, yaml, want, reason) in cases {
        let (set, _) = PolicySet::from_yaml(yaml).unwrap();
        let d = decide(&set, http(SLEEP, "GET", "/"));
        assert_eq!((d.allowed, d.reason), (want, reason), "{name}");
        let d = decide(&set, tcp(None, 80));
        assert_eq!(
            (d.allowed, d.reason),
            (want, reason),
            "{name} (tcp, no peer)"
        );
    }
}

#[test]
fn http_fields_on_tcp_fail_closed() {
    let allow_http =
        allow("{from: [{source: {principals: [\"*\"]}}], to: [{operation: {methods: [GET]}}]}");
    let allow_hdr = allow("when: [{key: \"request.headers[x-a]\", notValues: [\"1\"]}]");
    let deny_http = "policies:\n- name: d\n  action: DENY\n  rules:\n  - from: [{source: {namespaces: [payments]}}]\n    to: [{operation: {paths: [\"/admin\"]}}]\n".to_owned();
    let deny_not = deny("to: [{operation: {notPaths: [\"/health\"]}}]");
    check(&[
        (
            "ALLOW with methods never matches TCP",
            allow_http.clone(),
            tcp(Some(SLEEP), 80),
            false,
        ),
        (
            "same ALLOW matches HTTP",
            allow_http,
            http(SLEEP, "GET", "/"),
            true,
        ),
        (
            "ALLOW with header when never matches TCP",
            allow_hdr,
            tcp(Some(SLEEP), 80),
            false,
        ),
        (
            "DENY ignores HTTP fields on TCP: source matches",
            deny_http.clone(),
            tcp(Some(PAY), 80),
            false,
        ),
        (
            "DENY on TCP: rest of rule still applies",
            deny_http.clone(),
            tcp(Some(SLEEP), 80),
            true,
        ),
        (
            "DENY on HTTP: path checked",
            deny_http,
            http(PAY, "GET", "/other"),
            true,
        ),
        (
            "DENY notPaths on TCP matches",
            deny_not,
            tcp(Some(SLEEP), 80),
            false,
        ),
    ]);
}

#[test]
fn tcp_port_warnings() {
    let yaml = r#"
policies:
  - name: a
    action: ALLOW
    rules:
      - to: [{operation: {ports: [8080], paths: ["/x"]}}]
      - to: [{operation: {methods: [GET]}}]
      - to: [{operation: {ports: [5432]}}]
"#;
    let (set, w) = PolicySet::from_yaml(yaml).unwrap();
    assert!(w.is_empty());
    let w = set.tcp_port_warnings(&[5432]);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(
        w[0].to_string(),
        "policy \"a\" rules[1]: rule uses HTTP-only fields but may apply to TCP port 5432: this ALLOW rule never matches there"
    );
    assert_eq!(set.tcp_port_warnings(&[8080]).len(), 2);
    assert!(set.tcp_port_warnings(&[]).is_empty());
}

#[test]
fn load_warnings_for_rule_less_policies() {
    let (_, w) =
        PolicySet::from_yaml("policies: [{name: x, action: ALLOW}, {name: y, action: DENY}]")
            .unwrap();
    let msgs: Vec<String> = w.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            "policy \"x\": policy has no rules: it allows nothing, so traffic not allowed by another ALLOW policy is denied",
            "policy \"y\": policy has no rules: it matches nothing and has no effect",
        ]
    );
}

fn load_err(yaml: &str) -> String {
    match PolicySet::from_yaml(yaml) {
        Ok(_) => panic!("accepted: {yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn loader_errors_point_at_the_problem() {
    let cases: &[(&str, &str)] = &[
        (
            "policies: [{name: p, action: PERMIT}]",
            "policy \"p\": action: unknown action \"PERMIT\"; use ALLOW, DENY or AUDIT",
        ),
        (
            "policies: [{name: p, action: ALLOW, rules: [{to: [{operation: {ports: [70000]}}]}]}]",
            "policy \"p\": rules[0].to[0].operation.ports[0]: bad port \"70000\": expected a number from 1 to 65535",
        ),
        (
            "policies: [{name: p, action: ALLOW, rules: [{}, {to: [{operation: {notPorts: [\"http\"]}}]}]}]",
            "policy \"p\": rules[1].to[0].operation.notPorts[0]: bad port \"http\": expected a number from 1 to 65535",
        ),
        (
            "policies: [{name: p, action: ALLOW, rules: [{from: [{source: {principals: [\"cluster.local/*/sa/x\"]}}]}]}]",
            "policy \"p\": rules[0].from[0].source.principals[0]: bad value \"cluster.local/*/sa/x\": `*` may only be the whole value, its first character or its last character",
        ),
        (
            "policies: [{name: p, action: ALLOW, rules: [{from: [{source: {principals: [\"\"]}}]}]}]",
            "policy \"p\": rules[0].from[0].source.principals[0]: bad value \"\": empty value; remove it or write `*` to match any value",
        ),
        (
            "policies: [{name: p, action: ALLOW, rules: [{from: [{source: {principals: [\"spiffe://\"]}}]}]}]",
            "policy \"p\": rules[0].from[0].source.principals[0]: bad value \"spiffe://\": empty value; remove it or write `*` to match any value",
        ),
        (
            "policies: [{name: p, action: ALLOW, rules: [{when: [{key: source.ip, values: [\"1.2.3.4\"]}]}]}]",
            "policy \"p\": rules[0].when[0].key: unsupported key \"source.ip\"; use request.headers[<name>], source.principal, source.namespace or destination.port",
        ),
        (
            "policies: [{name: p, action: ALLOW, rules: [{when: [{key: source.principal}]}]}]",
            "policy \"p\": rules[0].when[0]: condition has neither values nor notValues; add at least one",
        ),
        (
            "policies: [{name: \"\", action: ALLOW}]",
            "policy \"#0\": name: policy names must be 1 to 253 characters long",
        ),
        (
            "policies: [{name: a, action: ALLOW}, {name: a, action: DENY}]",
            "policy \"a\" is defined twice; policy names must be unique",
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(&load_err(yaml), want, "{yaml}");
    }
}

#[test]
fn loader_rejects_unknown_fields_and_bad_structure() {
    let e = load_err(
        "policies:\n- name: p\n  action: ALLOW\n  rules:\n  - from:\n    - source:\n        principal: [x]\n",
    );
    assert!(e.starts_with("policy file is not valid: policies[0].rules[0].from[0].source: unknown field `principal`, expected one of"), "{e}");
    assert!(e.contains("line 7"), "{e}");
    let e = load_err("mode: enforce\npolicies: []\n");
    assert!(e.contains("unknown field `mode`"), "{e}");
    let e = load_err("policies: [{action: ALLOW}]");
    assert!(e.contains("missing field `name`"), "{e}");
}

/// A document without policies would allow everything; it is what a
/// truncated write leaves, so it is refused, never loaded as allow-all.
#[test]
fn files_without_policies_are_refused_not_allow_all() {
    let cases = [
        ("empty", ""),
        ("whitespace", "  \n\t\n"),
        ("comment only", "# policies for payments\n"),
        (
            "cut after a comment",
            "# policies for payments\n# owner: team-a\n",
        ),
        ("empty list", "policies: []\n"),
        ("empty map", "{}\n"),
        ("document marker only", "---\n# nothing yet\n"),
    ];
    for (name, yaml) in cases {
        let e = PolicySet::from_yaml(yaml).unwrap_err();
        assert!(matches!(e, PolicyError::NoPolicies), "{name}: {e}");
        let msg = e.to_string();
        assert!(msg.contains("would allow all traffic"), "{name}: {msg}");
        assert!(
            msg.contains("rules: [{}]"),
            "{name}: says how to allow all: {msg}"
        );
    }
    // Cut right after `policies:`, or a bare null: refused too.
    assert!(matches!(
        PolicySet::from_yaml("policies:\n"),
        Err(PolicyError::NoPolicies)
    ));
    assert!(PolicySet::from_yaml("~\n").is_err());
    // Allowing everything on purpose is written out, as in Istio.
    let (set, _) =
        PolicySet::from_yaml("policies: [{name: allow-all, action: ALLOW, rules: [{}]}]").unwrap();
    let d = decide(&set, tcp(None, 80));
    assert_eq!((d.allowed, d.reason), (true, Reason::AllowedByPolicy));
}

#[test]
fn loader_limits() {
    let big = format!("policies: []\n#{}\n", "x".repeat(1024 * 1024));
    assert!(matches!(
        PolicySet::from_yaml(&big),
        Err(PolicyError::TooLarge { .. })
    ));
    let many = format!(
        "policies: [{{name: p, action: ALLOW, rules: [{}{{}}]}}]",
        "{},".repeat(10_000)
    );
    assert_eq!(
        load_err(&many),
        "policy file has 10001 rules, more than the limit of 10000; merge rules or raise the limit"
    );
}

#[test]
fn from_file_reads_and_reports_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, "policies: [{name: x, action: ALLOW, rules: [{}]}]").unwrap();
    let (set, _) = PolicySet::from_file(&path).unwrap();
    assert_eq!(set.policies().len(), 1);
    let e = PolicySet::from_file(dir.path().join("missing.yaml")).unwrap_err();
    assert!(matches!(e, PolicyError::Io { .. }), "{e}");
    assert!(e.to_string().starts_with("cannot read policy file "), "{e}");
}

#[test]
fn explain_lists_policies_rules_and_decision() {
    let yaml = r#"
policies:
  - name: allow-sleep
    action: ALLOW
    rules:
      - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
      - to: [{operation: {paths: ["/public*"]}}]
  - name: deny-delete
    action: DENY
    rules:
      - to: [{operation: {methods: [DELETE]}}]
  - name: audit-pay
    action: AUDIT
    rules:
      - from: [{source: {namespaces: [payments]}}]
"#;
    let (set, _) = PolicySet::from_yaml(yaml).unwrap();
    let pay = SpiffeId::parse(PAY).unwrap();
    let text = explain(&set, &Request::http(Some(&pay), 8080, "GET", "/private"));
    let want = "\
request: peer=spiffe://cluster.local/ns/payments/sa/api port=8080 protocol=HTTP method=GET path=/private host=-
policy \"allow-sleep\" (ALLOW): no rule matched
  rules[0]: no match: no source matched (from[0] failed principals)
  rules[1]: no match: no operation matched (to[0] failed paths)
policy \"deny-delete\" (DENY): no rule matched
  rules[0]: no match: no operation matched (to[0] failed methods)
policy \"audit-pay\" (AUDIT): MATCHED by rules[0]
  rules[0]: matched
decision: DENY (denied: no ALLOW policy matched)
audited by: audit-pay
";
    assert_eq!(text, want);
    let text = explain(&set, &Request::tcp(None, 5432));
    assert!(
        text.contains(
            "rules[1]: no match: ALLOW rule uses HTTP-only fields and this is a TCP connection"
        ),
        "{text}"
    );
    assert!(text.contains("peer=(unauthenticated)"), "{text}");
}

#[test]
fn headers_from_an_http_header_map() {
    let yaml = allow("when: [{key: \"request.headers[X-Tenant]\", values: [\"acme\"]}]");
    let (set, _) = PolicySet::from_yaml(&yaml).unwrap();
    let id = SpiffeId::parse(SLEEP).unwrap();
    let mut headers = http::HeaderMap::new();
    let req = Request::http(Some(&id), 80, "GET", "/");
    assert!(!set.evaluate(&req.with_headers(&headers)).allowed);
    headers.insert("x-tenant", http::HeaderValue::from_static("acme"));
    assert!(set.evaluate(&req.with_headers(&headers)).allowed);
}
