//! `SpiffeId` and `TrustDomain` deserialize by parsing, so a config field of
//! either type is checked at load and a bad value names what is wrong.
#![allow(clippy::unwrap_used)]

use meshid_identity::{SpiffeId, TrustDomain};

#[derive(Debug, serde::Deserialize)]
struct Cfg {
    td: TrustDomain,
    id: SpiffeId,
}

#[test]
fn ids_deserialize_by_parsing() {
    let c: Cfg =
        serde_json::from_str(r#"{"td": "example.org", "id": "spiffe://example.org/a"}"#).unwrap();
    assert_eq!(c.td.as_str(), "example.org");
    assert_eq!(c.id.path(), "/a");
}

#[test]
fn bad_ids_are_refused_with_the_reason() {
    for (json, hint) in [
        (
            r#"{"td": "Example.org", "id": "spiffe://example.org/a"}"#,
            "\"Example.org\" is not a valid trust domain",
        ),
        (
            r#"{"td": "example.org", "id": "spiffe://example.org/a/"}"#,
            "is not a valid SPIFFE ID: path must not end with '/'",
        ),
        (
            r#"{"td": "example.org", "id": 7}"#,
            "expected a SPIFFE ID such as",
        ),
    ] {
        let e = serde_json::from_str::<Cfg>(json).unwrap_err().to_string();
        assert!(e.contains(hint), "{json}: {e}");
    }
}
