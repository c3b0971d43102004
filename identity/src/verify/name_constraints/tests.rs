//! Table-driven checks of one name against one CA's constraints.

use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::{GeneralName, GeneralSubtree, NameConstraints};

use super::{Violation, check_name, matching::uri_host};

const OK: Result<(), Violation> = Ok(());
const NOT_PERMITTED: Result<(), Violation> = Err(Violation::NotPermitted);
const EXCLUDED: Result<(), Violation> = Err(Violation::Excluded);

fn nc<'a>(permitted: &[GeneralName<'a>], excluded: &[GeneralName<'a>]) -> NameConstraints<'a> {
    let subtrees = |names: &[GeneralName<'a>]| {
        (!names.is_empty()).then(|| {
            names
                .iter()
                .map(|n| GeneralSubtree { base: n.clone() })
                .collect()
        })
    };
    NameConstraints {
        permitted_subtrees: subtrees(permitted),
        excluded_subtrees: subtrees(excluded),
    }
}

use GeneralName::{DNSName as Dns, IPAddress as Ip, RFC822Name as Email, URI as Uri};

#[test]
fn uri_constraints_match_the_host() {
    let id = Uri("spiffe://example.org/ns/a");
    let sub = Uri("spiffe://prod.example.org/ns/a");
    let cases = [
        // (permitted, excluded, name, expected)
        (vec![Uri("example.org")], vec![], &id, OK),
        (vec![Uri("EXAMPLE.org")], vec![], &id, OK),
        (vec![Uri("example.org")], vec![], &sub, NOT_PERMITTED),
        (vec![Uri(".example.org")], vec![], &sub, OK),
        (vec![Uri(".example.org")], vec![], &id, NOT_PERMITTED),
        (vec![Uri("other.org")], vec![], &id, NOT_PERMITTED),
        (vec![Uri("other.org"), Uri("example.org")], vec![], &id, OK),
        (vec![], vec![Uri("example.org")], &id, EXCLUDED),
        (vec![], vec![Uri(".example.org")], &id, OK),
        (vec![], vec![Uri(".example.org")], &sub, EXCLUDED),
        (vec![], vec![Uri("other.org")], &id, OK),
        // Excluded wins over permitted.
        (
            vec![Uri(".example.org")],
            vec![Uri("prod.example.org")],
            &sub,
            EXCLUDED,
        ),
        // A suffix that is not a label boundary is not a subdomain.
        (
            vec![Uri(".example.org")],
            vec![],
            &Uri("spiffe://badexample.org/x"),
            NOT_PERMITTED,
        ),
        // Constraints of another form leave URIs alone.
        (vec![Dns("other.org")], vec![Dns("example.org")], &id, OK),
        (vec![], vec![], &id, OK),
        // An empty constraint covers every URI.
        (vec![Uri("")], vec![], &id, OK),
        (vec![], vec![Uri("")], &id, EXCLUDED),
    ];
    for (i, (permitted, excluded, name, want)) in cases.into_iter().enumerate() {
        let got = check_name(&nc(&permitted, &excluded), name);
        assert_eq!(
            got, want,
            "case {i}: {permitted:?} / {excluded:?} on {name:?}"
        );
    }
}

#[test]
fn dns_constraints_match_the_name_and_its_subdomains() {
    let cases = [
        (vec![Dns("example.org")], vec![], "example.org", OK),
        (vec![Dns("example.org")], vec![], "api.example.org", OK),
        (vec![Dns("example.org")], vec![], "a.b.Example.ORG", OK),
        (
            vec![Dns("example.org")],
            vec![],
            "badexample.org",
            NOT_PERMITTED,
        ),
        (vec![Dns("example.org")], vec![], "org", NOT_PERMITTED),
        (vec![Dns(".example.org")], vec![], "api.example.org", OK),
        (
            vec![Dns(".example.org")],
            vec![],
            "example.org",
            NOT_PERMITTED,
        ),
        (
            vec![],
            vec![Dns("example.org")],
            "api.example.org",
            EXCLUDED,
        ),
        (vec![], vec![Dns(".example.org")], "example.org", OK),
        (vec![], vec![Dns("other.org")], "example.org", OK),
        (
            vec![Dns("example.org")],
            vec![Dns("db.example.org")],
            "x.db.example.org",
            EXCLUDED,
        ),
        (vec![Dns("")], vec![], "anything.test", OK),
        (vec![], vec![Dns("")], "anything.test", EXCLUDED),
        (vec![Uri("example.org")], vec![], "other.org", OK),
    ];
    for (i, (permitted, excluded, name, want)) in cases.into_iter().enumerate() {
        let got = check_name(&nc(&permitted, &excluded), &Dns(name));
        assert_eq!(
            got, want,
            "case {i}: {permitted:?} / {excluded:?} on {name}"
        );
    }
}

#[test]
fn ip_and_email_constraints() {
    let v4_net: &[u8] = &[10, 1, 0, 0, 255, 255, 0, 0];
    let v6_any: &[u8] = &[0; 32];
    let cases = [
        (vec![Ip(v4_net)], vec![], Ip(&[10, 1, 2, 3]), OK),
        (vec![Ip(v4_net)], vec![], Ip(&[10, 2, 0, 1]), NOT_PERMITTED),
        (vec![Ip(v4_net)], vec![], Ip(&[0; 16]), NOT_PERMITTED),
        (vec![Ip(v4_net), Ip(v6_any)], vec![], Ip(&[0; 16]), OK),
        (vec![], vec![Ip(v4_net)], Ip(&[10, 1, 9, 9]), EXCLUDED),
        (
            vec![Email("example.org")],
            vec![],
            Email("a@example.org"),
            OK,
        ),
        (
            vec![Email("example.org")],
            vec![],
            Email("a@x.example.org"),
            NOT_PERMITTED,
        ),
        (
            vec![Email(".example.org")],
            vec![],
            Email("a@x.example.org"),
            OK,
        ),
        (
            vec![Email("a@example.org")],
            vec![],
            Email("b@example.org"),
            NOT_PERMITTED,
        ),
        (
            vec![],
            vec![Email("a@example.org")],
            Email("a@EXAMPLE.org"),
            EXCLUDED,
        ),
    ];
    for (i, (permitted, excluded, name, want)) in cases.into_iter().enumerate() {
        let got = check_name(&nc(&permitted, &excluded), &name);
        assert_eq!(
            got, want,
            "case {i}: {permitted:?} / {excluded:?} on {name:?}"
        );
    }
}

#[test]
fn what_cannot_be_checked_fails_closed() {
    let other = GeneralName::Invalid(Tag(0), b"\x06\x03\x2a\x03\x04");
    let unchecked = [
        // A URI without a host under a URI constraint.
        (nc(&[Uri("example.org")], &[]), Uri("urn:uuid:1234")),
        (nc(&[], &[Uri("example.org")]), Uri("spiffe:///x")),
        // A malformed IP constraint.
        (nc(&[Ip(&[10, 0, 0, 0])], &[]), Ip(&[10, 0, 0, 1])),
        // A form we do not check, constrained and present.
        (nc(&[], std::slice::from_ref(&other)), other.clone()),
        (nc(std::slice::from_ref(&other), &[]), other.clone()),
    ];
    for (i, (nc, name)) in unchecked.iter().enumerate() {
        let got = check_name(nc, name);
        assert!(
            matches!(got, Err(Violation::Unsupported(_))),
            "case {i}: {got:?}"
        );
    }
    // The same forms are fine where no constraint of their form applies.
    assert_eq!(check_name(&nc(&[Dns("example.org")], &[]), &other), OK);
    assert_eq!(
        check_name(&nc(&[Dns("example.org")], &[]), &Uri("urn:x")),
        OK
    );
}

#[test]
fn uri_hosts() {
    let cases = [
        ("spiffe://example.org/ns/a", Some("example.org")),
        ("spiffe://example.org", Some("example.org")),
        ("https://user@host.test:8443/p?q#f", Some("host.test")),
        ("https://[::1]:8443/", Some("[::1]")),
        ("spiffe:///path", None),
        ("urn:uuid:1", None),
    ];
    for (uri, host) in cases {
        assert_eq!(uri_host(uri), host, "{uri}");
    }
}
