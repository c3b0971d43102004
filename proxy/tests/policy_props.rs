//! Property tests for the policy engine, plus hot reload.
#![allow(clippy::unwrap_used)]

use meshid_identity::SpiffeId;
use meshid_proxy::policy::{Pattern, PolicyError, PolicySet, PolicyWatcher, Request};
use meshid_tests::eventually_async;
use proptest::prelude::*;
use std::time::Duration;

/// A reference matcher written the obvious way, independent of `Pattern`.
fn reference(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(p) = pattern.strip_suffix('*') {
        return value.len() >= p.len() && &value.as_bytes()[..p.len()] == p.as_bytes();
    }
    if let Some(s) = pattern.strip_prefix('*') {
        return value.len() >= s.len()
            && &value.as_bytes()[value.len() - s.len()..] == s.as_bytes();
    }
    pattern == value
}

fn word() -> impl Strategy<Value = String> {
    "[a-c/.]{0,4}"
}

fn pattern_str() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c/.]{1,4}",
        "[a-c/.]{0,4}".prop_map(|s| format!("{s}*")),
        "[a-c/.]{0,4}".prop_map(|s| format!("*{s}")),
        Just("*".to_owned()),
    ]
}

/// A random but valid policy.
fn policy(name: String, action: &'static str) -> impl Strategy<Value = String> {
    let rule = (
        proptest::option::of(pattern_str()),
        proptest::option::of(prop_oneof![Just("default"), Just("pay*"), Just("*")]),
        proptest::option::of(prop_oneof![Just("80"), Just("8080")]),
        proptest::option::of(prop_oneof![Just("GET"), Just("P*")]),
        proptest::option::of(pattern_str().prop_map(|p| {
            if p.starts_with('*') {
                p
            } else {
                format!("/{p}")
            }
        })),
        any::<bool>(),
    )
        .prop_map(|(principal, ns, port, method, path, negate)| {
            let not = |f: &str| {
                if negate {
                    let mut c = f.chars();
                    let first = c.next().map(|c| c.to_ascii_uppercase()).unwrap_or('x');
                    format!("not{first}{}", c.as_str())
                } else {
                    f.to_owned()
                }
            };
            let mut src = Vec::new();
            if let Some(p) = principal {
                let p = if p.starts_with('*') {
                    p
                } else {
                    format!("cluster.local/{p}")
                };
                src.push(format!("{}: [\"{p}\"]", not("principals")));
            }
            if let Some(n) = ns {
                src.push(format!("namespaces: [\"{n}\"]"));
            }
            let mut op = Vec::new();
            if let Some(p) = port {
                op.push(format!("ports: [{p}]"));
            }
            if let Some(m) = method {
                op.push(format!("{}: [\"{m}\"]", not("methods")));
            }
            if let Some(p) = path {
                op.push(format!("paths: [\"{p}\"]"));
            }
            let mut rule = Vec::new();
            if !src.is_empty() {
                rule.push(format!("from: [{{source: {{{}}}}}]", src.join(", ")));
            }
            if !op.is_empty() {
                rule.push(format!("to: [{{operation: {{{}}}}}]", op.join(", ")));
            }
            format!("{{{}}}", rule.join(", "))
        });
    proptest::collection::vec(rule, 0..3).prop_map(move |rules| {
        format!(
            "  - {{name: {name}, action: {action}, rules: [{}]}}\n",
            rules.join(", ")
        )
    })
}

fn policies(n: usize) -> impl Strategy<Value = String> {
    let each: Vec<_> = (0..n)
        .map(|i| {
            prop_oneof![Just("ALLOW"), Just("DENY"), Just("AUDIT")]
                .prop_flat_map(move |a| policy(format!("p{i}"), a))
        })
        .collect();
    (each, 0..=n).prop_map(|(ps, keep)| ps[..keep].concat())
}

#[derive(Debug, Clone)]
struct Req {
    peer: Option<String>,
    port: u16,
    http: Option<(String, String)>,
}

fn request() -> impl Strategy<Value = Req> {
    (
        proptest::option::of(prop_oneof![
            Just("spiffe://cluster.local/ns/default/sa/a".to_owned()),
            Just("spiffe://cluster.local/ns/payments/sa/b".to_owned()),
            Just("spiffe://other.td/x/y".to_owned()),
            "[a-c/.]{0,4}".prop_map(|p| format!("spiffe://cluster.local/{p}")),
        ]),
        prop_oneof![Just(80u16), Just(8080), any::<u16>()],
        proptest::option::of(
            (prop_oneof![Just("GET"), Just("POST"), Just("PUT")], word())
                .prop_map(|(m, p)| (m.to_owned(), format!("/{p}"))),
        ),
    )
        .prop_map(|(peer, port, http)| Req { peer, port, http })
}

fn eval(set: &PolicySet, r: &Req) -> bool {
    let id = r.peer.as_deref().and_then(|p| SpiffeId::parse(p).ok());
    let req = match &r.http {
        None => Request::tcp(id.as_ref(), r.port),
        Some((m, p)) => Request::http(id.as_ref(), r.port, m, p),
    };
    set.evaluate(&req).allowed
}

/// Compiles `yaml`; zero policies stand for a proxy without a policy file
/// (the empty set), since a file must list at least one policy.
fn load(yaml: &str) -> PolicySet {
    match PolicySet::from_yaml(yaml) {
        Ok((set, _)) => set,
        Err(PolicyError::NoPolicies) => PolicySet::default(),
        Err(e) => panic!("{e}\n{yaml}"),
    }
}

proptest! {
    #[test]
    fn adding_deny_never_allows_more(base in policies(3), extra in policy("extra".into(), "DENY"), reqs in proptest::collection::vec(request(), 1..8)) {
        let before = load(&format!("policies:\n{base}"));
        let after = load(&format!("policies:\n{base}{extra}"));
        for r in &reqs {
            prop_assert!(eval(&before, r) || !eval(&after, r), "deny turned into allow for {r:?}");
        }
    }

    #[test]
    fn adding_allow_never_denies_more_when_allow_existed(base in policies(3), extra in policy("extra".into(), "ALLOW"), reqs in proptest::collection::vec(request(), 1..8)) {
        let before = load(&format!("policies:\n{base}"));
        prop_assume!(before.has_allow_policy());
        let after = load(&format!("policies:\n{base}{extra}"));
        for r in &reqs {
            prop_assert!(!eval(&before, r) || eval(&after, r), "allow turned into deny for {r:?}");
        }
    }

    #[test]
    fn audit_never_changes_the_decision(base in policies(3), extra in policy("extra".into(), "AUDIT"), reqs in proptest::collection::vec(request(), 1..8)) {
        let before = load(&format!("policies:\n{base}"));
        let after = load(&format!("policies:\n{base}{extra}"));
        for r in &reqs {
            prop_assert_eq!(eval(&before, r), eval(&after, r));
        }
    }

    #[test]
    fn evaluation_never_panics_on_arbitrary_requests(
        base in policies(3),
        port in any::<u16>(),
        method in ".{0,8}", path in ".{0,32}", host in ".{0,16}",
        hname in "[a-z-]{1,8}", hval in ".{0,16}",
    ) {
        let set = load(&format!("policies:\n{base}  - {{name: h, action: ALLOW, rules: [{{to: [{{operation: {{hosts: [\"*.x\"]}}}}], when: [{{key: \"request.headers[x-a]\", values: [\"a*\"]}}]}}]}}\n"));
        let headers = [(hname.as_str(), hval.as_str())];
        let req = Request::http(None, port, &method, &path).with_host(&host).with_headers(&headers);
        let d = set.evaluate(&req);
        let text = meshid_proxy::policy::explain(&set, &req);
        let want = if d.allowed { "decision: ALLOW" } else { "decision: DENY" };
        prop_assert!(text.contains(want), "{}", text);
    }

    #[test]
    fn loader_never_panics_on_arbitrary_text(text in ".{0,200}") {
        let _ = PolicySet::from_yaml(&text);
    }

    #[test]
    fn pattern_agrees_with_reference(p in pattern_str(), v in word()) {
        let compiled = Pattern::parse(&p).unwrap();
        prop_assert_eq!(compiled.matches(&v), reference(&p, &v), "{} vs {}", p, v);
        prop_assert_eq!(compiled.to_string(), p);
    }

    #[test]
    fn patterns_with_inner_star_are_rejected(a in "[a-c]{1,3}", b in "[a-c]{1,3}") {
        let inner = format!("{a}*{b}");
        prop_assert!(Pattern::parse(&inner).is_err());
    }
}

/// How long a policy change may take to be in force (10 ms polls).
const RELOAD: Duration = Duration::from_secs(10);

#[tokio::test]
async fn hot_reload_swaps_valid_files_and_keeps_old_on_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        "policies: [{name: allow-all, action: ALLOW, rules: [{}]}]\n",
    )
    .unwrap();
    let watcher = PolicyWatcher::start(&path, Duration::from_millis(10)).unwrap();
    let id = SpiffeId::parse("spiffe://cluster.local/ns/default/sa/a").unwrap();
    let req = Request::tcp(Some(&id), 80);
    assert!(watcher.current().evaluate(&req).allowed);

    std::fs::write(
        &path,
        "policies: [{name: deny-all, action: DENY, rules: [{}]}]\n",
    )
    .unwrap();
    eventually_async("deny-all in force", RELOAD, || async {
        (!watcher.current().evaluate(&req).allowed).then_some(())
    })
    .await;
    let shared = watcher.shared();
    assert_eq!(shared.load().policies()[0].name(), "deny-all");

    // An invalid file is ignored: deny-all stays for later polls.
    std::fs::write(&path, "policies: [{name: x, action: NOPE}]\n").unwrap();
    let polls = watcher.polls();
    eventually_async("two more polls", RELOAD, || async {
        (watcher.polls() >= polls + 2).then_some(())
    })
    .await;
    assert_eq!(watcher.current().policies()[0].name(), "deny-all");

    // A valid file again proves the watcher kept running past the bad one.
    std::fs::write(
        &path,
        "policies: [{name: allow-again, action: ALLOW, rules: [{}]}]\n",
    )
    .unwrap();
    eventually_async("allow-again in force", RELOAD, || async {
        (watcher.current().policies()[0].name() == "allow-again").then_some(())
    })
    .await;

    // Deleting the file keeps the last good policy.
    std::fs::remove_file(&path).unwrap();
    let polls = watcher.polls();
    eventually_async("two more polls", RELOAD, || async {
        (watcher.polls() >= polls + 2).then_some(())
    })
    .await;
    assert!(watcher.current().evaluate(&req).allowed);
}

#[tokio::test]
async fn watcher_refuses_an_invalid_initial_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, "policies: [{name: x, action: NOPE}]\n").unwrap();
    let e = PolicyWatcher::start(&path, Duration::from_millis(10)).unwrap_err();
    assert!(e.to_string().contains("unknown action \"NOPE\""), "{e}");
}
