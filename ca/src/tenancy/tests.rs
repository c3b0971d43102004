use std::time::UNIX_EPOCH;

use super::*;
use crate::store::NewEntry;

fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

fn tenant(name: &str, prefixes: &[&str]) -> Tenant {
    Tenant {
        name: name.into(),
        spiffe_id_prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
        k8s_namespaces: Vec::new(),
        allowed_parents: Vec::new(),
        federates_with: Vec::new(),
        created_at: UNIX_EPOCH,
    }
}

fn id(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

#[test]
fn prefixes_hold_ids_by_whole_segments() {
    assert!(holds(
        "spiffe://example.org/ns/a",
        "spiffe://example.org/ns/a"
    ));
    assert!(holds(
        "spiffe://example.org/ns/a",
        "spiffe://example.org/ns/a/web"
    ));
    assert!(!holds(
        "spiffe://example.org/ns/a",
        "spiffe://example.org/ns/ab"
    ));
    let tenants = [tenant("a", &["spiffe://example.org/ns/a"])];
    assert_eq!(
        tenant_of(&tenants, &id("spiffe://example.org/ns/a/web")).map(|t| t.name.as_str()),
        Some("a")
    );
    assert!(tenant_of(&tenants, &id("spiffe://example.org/ns/b")).is_none());
}

#[test]
fn bad_prefixes_are_refused_with_the_reason() {
    for (prefix, needle) in [
        ("spiffe://example.org/ns/a/", "ends with '/'"),
        ("spiffe://other.org/ns/a", "not in this CA's trust domain"),
        ("spiffe://example.org", "whole trust domain"),
        ("spiffe://example.org/meshid/x", "reserves"),
        ("not an id", "not a SPIFFE ID"),
    ] {
        let e = check_tenant(tenant("a", &[prefix]), &td(), &[]).unwrap_err();
        assert!(e.to_string().contains(needle), "{prefix}: {e}");
    }
    let e = check_tenant(tenant("a", &[]), &td(), &[]).unwrap_err();
    assert_eq!(e.field, "spiffe_id_prefixes");
    let e = check_tenant(tenant("A", &["spiffe://example.org/a"]), &td(), &[]).unwrap_err();
    assert_eq!(e.field, "name");
}

#[test]
fn tenants_never_overlap() {
    let a = check_tenant(tenant("a", &["spiffe://example.org/ns/a"]), &td(), &[]).unwrap();
    let others = [a];
    for p in [
        "spiffe://example.org/ns/a",
        "spiffe://example.org/ns/a/sub",
        "spiffe://example.org/ns",
    ] {
        let e = check_tenant(tenant("b", &[p]), &td(), &others).unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{p}: {e}");
    }
    check_tenant(tenant("b", &["spiffe://example.org/ns/ab"]), &td(), &others).unwrap();
    let e = check_tenant(
        tenant("c", &["spiffe://example.org/x", "spiffe://example.org/x/y"]),
        &td(),
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().contains("overlap"), "{e}");
}

#[test]
fn own_trust_domain_cannot_be_federated() {
    let mut t = tenant("a", &["spiffe://example.org/a"]);
    t.federates_with = vec![td()];
    assert_eq!(
        check_tenant(t, &td(), &[]).unwrap_err().field,
        "federates_with"
    );
}

#[test]
fn entries_name_parents_and_federation_within_their_tenant() {
    let mut t = tenant("a", &["spiffe://example.org/ns/a"]);
    t.allowed_parents = vec!["spiffe://example.org/meshid/agent/k8s_psat/prod".into()];
    t.federates_with = vec![TrustDomain::new("partner.org").unwrap()];
    let entry =
        |parent: &str| NewEntry::new(id("spiffe://example.org/ns/a/web"), id(parent), Vec::new());
    check_entry(&t, &entry("spiffe://example.org/ns/a/node"), false).unwrap();
    check_entry(
        &t,
        &entry("spiffe://example.org/meshid/agent/k8s_psat/prod/n1"),
        false,
    )
    .unwrap();
    let outside = entry("spiffe://example.org/meshid/agent/join_token/abc");
    assert_eq!(
        check_entry(&t, &outside, false).unwrap_err().field,
        "parent_id"
    );
    check_entry(&t, &outside, true).unwrap();
    let mut fed = entry("spiffe://example.org/ns/a/node");
    fed.federates_with = vec![TrustDomain::new("evil.org").unwrap()];
    assert_eq!(
        check_entry(&t, &fed, false).unwrap_err().field,
        "federates_with"
    );
    fed.federates_with = vec![TrustDomain::new("partner.org").unwrap()];
    check_entry(&t, &fed, false).unwrap();
}

#[test]
fn aliases_stay_in_their_token_tenant() {
    let a = tenant("a", &["spiffe://example.org/ns/a"]);
    let b = tenant("b", &["spiffe://example.org/ns/b"]);
    let alias = id("spiffe://example.org/ns/a/node");
    check_alias(Some(&a), &alias, Some(&a)).unwrap();
    assert!(check_alias(Some(&b), &alias, Some(&a)).is_err());
    assert!(check_alias(None, &alias, Some(&a)).is_err());
    check_alias(None, &id("spiffe://example.org/node"), None).unwrap();
}

#[test]
fn differences_name_the_fields() {
    let a = tenant("a", &["spiffe://example.org/ns/a"]);
    let mut b = a.clone();
    assert!(differences(&a, &b).is_empty());
    b.k8s_namespaces = vec!["a".into()];
    let d = differences(&a, &b);
    assert_eq!(d.len(), 1);
    assert!(d[0].starts_with("k8s_namespaces"), "{d:?}");
}
