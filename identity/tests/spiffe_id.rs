//! Every SPIFFE-ID rule, as a table and as properties, plus selector parsing.
#![allow(clippy::unwrap_used)]

use meshid_identity::selector::{MAX_SELECTOR_VALUE_LEN, all_match};
use meshid_identity::{IdError, Selector, SelectorError, SpiffeId, TrustDomain};
use proptest::prelude::*;

#[test]
fn accepted_ids() {
    for (input, td, path) in [
        ("spiffe://example.org", "example.org", ""),
        ("spiffe://example.org/a", "example.org", "/a"),
        (
            "spiffe://example.org/ns/default/sa/api",
            "example.org",
            "/ns/default/sa/api",
        ),
        ("spiffe://a-b_c.9/X.y-Z_0", "a-b_c.9", "/X.y-Z_0"),
        ("spiffe://example.org/...", "example.org", "/..."),
        ("spiffe://example.org/.hidden", "example.org", "/.hidden"),
        ("SPIFFE://example.org/a", "example.org", "/a"),
        ("SpIfFe://example.org/a", "example.org", "/a"),
    ] {
        let id = SpiffeId::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(id.trust_domain_str(), td, "{input}");
        assert_eq!(id.path(), path, "{input}");
        assert!(
            id.as_str().starts_with("spiffe://"),
            "scheme normalised: {input}"
        );
    }
}

#[test]
fn rejected_ids() {
    let long_td = format!("spiffe://{}/a", "a".repeat(256));
    let long_id = format!("spiffe://example.org/{}", "a".repeat(2048));
    let cases: Vec<(&str, IdError)> = vec![
        ("", IdError::Empty),
        ("example.org/a", IdError::WrongScheme),
        ("https://example.org/a", IdError::WrongScheme),
        ("spiffe:/example.org", IdError::WrongScheme),
        ("spiffe://", IdError::EmptyTrustDomain),
        ("spiffe:///a", IdError::EmptyTrustDomain),
        (&long_td, IdError::TrustDomainTooLong(256)),
        ("spiffe://Example.org/a", IdError::TrustDomainChar('E')),
        ("spiffe://exa mple.org", IdError::TrustDomainChar(' ')),
        ("spiffe://exämple.org", IdError::TrustDomainChar('ä')),
        ("spiffe://example.org:443/a", IdError::Port),
        ("spiffe://user@example.org/a", IdError::UserInfo),
        ("spiffe://exa%41mple.org", IdError::PercentEncoded),
        ("spiffe://example.org/a%20b", IdError::PercentEncoded),
        ("spiffe://example.org/a?x=1", IdError::Query),
        ("spiffe://example.org/a#frag", IdError::Fragment),
        ("spiffe://example.org//a", IdError::EmptySegment),
        ("spiffe://example.org/a//b", IdError::EmptySegment),
        ("spiffe://example.org/./a", IdError::DotSegment),
        ("spiffe://example.org/a/..", IdError::DotSegment),
        ("spiffe://example.org/", IdError::TrailingSlash),
        ("spiffe://example.org/a/", IdError::TrailingSlash),
        ("spiffe://example.org/a b", IdError::PathChar(' ')),
        ("spiffe://example.org/a:b", IdError::PathChar(':')),
        ("spiffe://example.org/é", IdError::PathChar('é')),
        (&long_id, IdError::TooLong(long_id.len())),
    ];
    for (input, want) in cases {
        assert_eq!(SpiffeId::parse(input), Err(want), "{input:?}");
    }
}

#[test]
fn length_limits_are_inclusive() {
    let td = "a".repeat(255);
    assert!(TrustDomain::new(&td).is_ok());
    let path = format!("/{}", "b".repeat(2048 - "spiffe://x".len() - 1));
    let id = format!("spiffe://x{path}");
    assert_eq!(id.len(), 2048);
    assert!(SpiffeId::parse(&id).is_ok());
}

#[test]
fn trust_domains() {
    assert_eq!(
        TrustDomain::new("example.org").unwrap().as_str(),
        "example.org"
    );
    assert_eq!(
        TrustDomain::new("spiffe://example.org/x").unwrap().as_str(),
        "example.org"
    );
    assert_eq!(
        TrustDomain::new("EXAMPLE.org"),
        Err(IdError::TrustDomainChar('E'))
    );
    assert_eq!(
        TrustDomain::new("SPIFFE://Example.org"),
        Err(IdError::TrustDomainChar('E'))
    );
    assert_eq!(TrustDomain::new(""), Err(IdError::EmptyTrustDomain));
    let td = TrustDomain::new("example.org").unwrap();
    assert_eq!(td.id().as_str(), "spiffe://example.org");
    assert_eq!(
        td.id_with_path("/a/b").unwrap().as_str(),
        "spiffe://example.org/a/b"
    );
    assert_eq!(td.id_with_path("").unwrap(), td.id());
    // A path without a leading '/' must not glue onto the trust domain.
    assert_eq!(td.id_with_path("evil.com/a"), Err(IdError::RelativePath));
    let id: SpiffeId = "spiffe://example.org/a".parse().unwrap();
    assert!(id.is_member_of(&td));
    assert!(!id.is_member_of(&TrustDomain::new("example.com").unwrap()));
}

#[test]
fn meshid_reserves_its_own_path_by_whole_segments() {
    for reserved in [
        "spiffe://example.org/meshid",
        "spiffe://example.org/meshid/ca",
        "spiffe://example.org/meshid/agent/join_token/0123456789abcdef",
        "spiffe://other.org/meshid/anything/else",
    ] {
        let id: SpiffeId = reserved.parse().unwrap();
        assert!(id.is_reserved(), "{reserved} must be reserved");
    }
    for free in [
        "spiffe://example.org",
        "spiffe://example.org/meshidfoo",
        "spiffe://example.org/meshid-ca",
        "spiffe://example.org/MeshID/ca",
        "spiffe://example.org/ns/meshid/ca",
        "spiffe://meshid/ca",
    ] {
        let id: SpiffeId = free.parse().unwrap();
        assert!(!id.is_reserved(), "{free} must not be reserved");
    }
}

#[test]
fn serde_goes_through_the_parser() {
    let id: SpiffeId = serde_json::from_str(r#""SPIFFE://example.org/a""#).unwrap();
    assert_eq!(
        serde_json::to_string(&id).unwrap(),
        r#""spiffe://example.org/a""#
    );
    assert!(serde_json::from_str::<SpiffeId>(r#""spiffe://example.org/../a""#).is_err());
    assert!(serde_json::from_str::<TrustDomain>(r#""Example.org""#).is_err());
}

fn trust_domain() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,40}"
}

fn segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{1,16}".prop_filter("dot segments are invalid", |s| s != "." && s != "..")
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 0..6)
        .prop_map(|segs| segs.iter().map(|s| format!("/{s}")).collect())
}

fn valid_id() -> impl Strategy<Value = (String, String)> {
    (trust_domain(), path())
}

proptest! {
    #[test]
    fn valid_ids_round_trip((td, path) in valid_id(), upper in any::<bool>()) {
        let scheme = if upper { "SPIFFE://" } else { "spiffe://" };
        let id = SpiffeId::parse(&format!("{scheme}{td}{path}")).unwrap();
        prop_assert_eq!(id.trust_domain_str(), td.as_str());
        prop_assert_eq!(id.path(), path.as_str());
        let again = SpiffeId::parse(&id.to_string()).unwrap();
        prop_assert_eq!(&again, &id);
        prop_assert_eq!(again.to_string(), format!("spiffe://{td}{path}"));
    }

    #[test]
    fn uppercase_in_trust_domain_is_rejected((td, path) in valid_id(), at in any::<prop::sample::Index>(), c in "[A-Z]") {
        let mut td: Vec<char> = td.chars().collect();
        let i = at.index(td.len() + 1);
        let c = c.chars().next().unwrap();
        td.insert(i, c);
        let td: String = td.into_iter().collect();
        prop_assert_eq!(SpiffeId::parse(&format!("spiffe://{td}{path}")), Err(IdError::TrustDomainChar(c)));
    }

    #[test]
    fn injected_violations_are_rejected((td, path) in valid_id(), seg in segment(), kind in 0usize..10) {
        let (input, want) = match kind {
            0 => (format!("spiffe://{td}{path}/"), IdError::TrailingSlash),
            1 => (format!("spiffe://{td}{path}//{seg}"), IdError::EmptySegment),
            2 => (format!("spiffe://{td}{path}/./{seg}"), IdError::DotSegment),
            3 => (format!("spiffe://{td}{path}/../{seg}"), IdError::DotSegment),
            4 => (format!("spiffe://{td}{path}/{seg}%2F"), IdError::PercentEncoded),
            5 => (format!("spiffe://{td}{path}?{seg}"), IdError::Query),
            6 => (format!("spiffe://{td}{path}#{seg}"), IdError::Fragment),
            7 => (format!("spiffe://{td}:8443{path}"), IdError::Port),
            8 => (format!("spiffe://{seg}@{td}{path}"), IdError::UserInfo),
            _ => (format!("http://{td}{path}"), IdError::WrongScheme),
        };
        prop_assert_eq!(SpiffeId::parse(&input), Err(want), "{}", input);
    }

    #[test]
    fn bad_path_chars_are_rejected((td, path) in valid_id(), seg in segment(), c in "[!$&'()*+,;=:~ \\[\\]]") {
        let c = c.chars().next().unwrap();
        let input = format!("spiffe://{td}{path}/{seg}{c}");
        prop_assert_eq!(SpiffeId::parse(&input), Err(IdError::PathChar(c)));
    }

    #[test]
    fn parse_never_panics(s in "\\PC{0,64}") {
        let _ = SpiffeId::parse(&s);
        let _ = SpiffeId::parse(&format!("spiffe://{s}"));
    }
}

#[test]
fn selectors_parse() {
    let s = Selector::parse("unix:uid:1000").unwrap();
    assert_eq!((s.kind(), s.value()), ("unix", "uid:1000"));
    assert_eq!(s.to_string(), "unix:uid:1000");
    let k = Selector::parse("k8s:ns:payments").unwrap();
    assert_eq!((k.kind(), k.value()), ("k8s", "ns:payments"));
    assert_eq!(
        Selector::parse("unix"),
        Err(SelectorError::MissingColon("unix".into()))
    );
    assert_eq!(
        Selector::parse(":uid:1"),
        Err(SelectorError::BadType(String::new()))
    );
    assert_eq!(
        Selector::parse("Unix:uid:1"),
        Err(SelectorError::BadType("Unix".into()))
    );
    assert_eq!(Selector::parse("unix:"), Err(SelectorError::EmptyValue));
    assert_eq!(
        Selector::parse("unix:uid\n1"),
        Err(SelectorError::ControlChar)
    );
    let long = format!("unix:{}", "v".repeat(MAX_SELECTOR_VALUE_LEN + 1));
    assert_eq!(
        Selector::parse(&long),
        Err(SelectorError::ValueTooLong(MAX_SELECTOR_VALUE_LEN + 1))
    );
}

#[test]
fn selectors_match_only_when_all_are_present() {
    let have = [
        Selector::parse("unix:uid:1000").unwrap(),
        Selector::parse("unix:gid:50").unwrap(),
    ];
    assert!(all_match(
        &[Selector::parse("unix:uid:1000").unwrap()],
        &have
    ));
    assert!(!all_match(&[Selector::parse("unix:uid:0").unwrap()], &have));
    assert!(!all_match(&[], &have));
}
