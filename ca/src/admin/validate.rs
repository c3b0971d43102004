//! Checks on what operators send to the admin API. A value that passes is
//! safe to store; a value that fails says which field is wrong and how to
//! fix it.

use std::time::Duration;

use meshid_identity::{Selector, SpiffeId, TrustDomain};

use crate::store::{MAX_DNS_NAMES, MAX_FEDERATES_WITH, MAX_SELECTORS, owner_problem};

/// Longest X.509-SVID lifetime an entry may ask for (30 days).
pub const MAX_X509_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Shortest non-default X.509-SVID lifetime (1 minute).
pub const MIN_X509_TTL: Duration = Duration::from_secs(60);
/// Longest JWT-SVID lifetime an entry may ask for (24 hours).
pub const MAX_JWT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Shortest non-default JWT-SVID lifetime (30 seconds).
pub const MIN_JWT_TTL: Duration = Duration::from_secs(30);
/// Longest join-token lifetime (7 days).
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest DNS name (RFC 1035 §2.3.4).
pub const MAX_DNS_NAME_LEN: usize = 253;
/// Longest hint.
pub const MAX_HINT_LEN: usize = 1024;

/// Why an admin request field is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// A field that must be a SPIFFE ID is not one.
    #[error("{field} {value:?} is not a valid SPIFFE ID: {reason}")]
    BadSpiffeId {
        /// The request field.
        field: &'static str,
        /// What was sent (truncated).
        value: String,
        /// Why it failed to parse.
        reason: String,
    },
    /// A SPIFFE ID belongs to another trust domain.
    #[error(
        "{field} {value} is not in this CA's trust domain {trust_domain}; use spiffe://{trust_domain}/..."
    )]
    ForeignId {
        /// The request field.
        field: &'static str,
        /// The ID sent.
        value: SpiffeId,
        /// The CA's trust domain.
        trust_domain: TrustDomain,
    },
    /// A workload SPIFFE ID without a path.
    #[error("{field} {value} has no path; give the workload a name such as {value}/ns/app")]
    NoPath {
        /// The request field.
        field: &'static str,
        /// The ID sent.
        value: SpiffeId,
    },
    /// A workload SPIFFE ID in the space meshid reserves for the CA and
    /// agents ([`SpiffeId::is_reserved`]).
    #[error(
        "{field} {value} is reserved: paths at or under {reserved} name the CA \
         ({reserved}/ca) and agents ({reserved}/agent/...), and a workload holding such an ID \
         could act as one; choose a path outside {reserved}, e.g. spiffe://{td}/ns/app",
        reserved = meshid_identity::id::RESERVED_PATH,
        td = value.trust_domain_str()
    )]
    ReservedId {
        /// The request field.
        field: &'static str,
        /// The ID sent.
        value: SpiffeId,
    },
    /// A selector is malformed.
    #[error("selector {kind:?}:{value:?} is invalid: {reason}")]
    BadSelector {
        /// The selector type sent.
        kind: String,
        /// The selector value sent (truncated).
        value: String,
        /// Why it failed.
        reason: String,
    },
    /// An entry without selectors would match every workload.
    #[error("an entry needs at least one selector (e.g. unix:uid:1000); none were given")]
    NoSelectors,
    /// Too many items in a list field.
    #[error("{field} has {count} items; the limit is {limit}")]
    TooMany {
        /// The request field.
        field: &'static str,
        /// How many were sent.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A DNS name is not a valid host name.
    #[error("dns name {value:?} is invalid: {reason}")]
    BadDnsName {
        /// The name sent (truncated).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A trust domain name is malformed.
    #[error("{field} {value:?} is not a valid trust domain: {reason}")]
    BadTrustDomain {
        /// The request field.
        field: &'static str,
        /// What was sent (truncated).
        value: String,
        /// Why it failed.
        reason: String,
    },
    /// The request names the CA's own trust domain where a foreign one is needed.
    #[error("{field} {value} is this CA's own trust domain; name a foreign trust domain")]
    OwnTrustDomain {
        /// The request field.
        field: &'static str,
        /// The trust domain.
        value: TrustDomain,
    },
    /// A lifetime outside its allowed range.
    #[error("{field} of {secs}s is out of range; use 0 for the default or {min}s..={max}s")]
    TtlOutOfRange {
        /// The request field.
        field: &'static str,
        /// What was sent.
        secs: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// An entry owner that is too long or holds characters outside
    /// `a-z 0-9 . _ - /`.
    #[error("{field} {value:?} {reason}")]
    BadOwner {
        /// The request field.
        field: &'static str,
        /// What was sent (truncated).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A field that must be empty (or must be set) is not.
    #[error("{field}: {reason}")]
    Field {
        /// The request field.
        field: &'static str,
        /// What to do.
        reason: &'static str,
    },
}

/// Truncates hostile input before echoing it in an error.
pub(crate) fn echo(s: &str) -> String {
    s.chars().take(120).collect()
}

/// Parses `value` as a SPIFFE ID in `td`.
pub fn spiffe_id_in(
    field: &'static str,
    value: &str,
    td: &TrustDomain,
) -> Result<SpiffeId, InvalidInput> {
    let id = any_spiffe_id(field, value)?;
    if !id.is_member_of(td) {
        return Err(InvalidInput::ForeignId {
            field,
            value: id,
            trust_domain: td.clone(),
        });
    }
    Ok(id)
}

/// Parses `value` as a SPIFFE ID of any trust domain.
pub fn any_spiffe_id(field: &'static str, value: &str) -> Result<SpiffeId, InvalidInput> {
    if value.is_empty() {
        return Err(InvalidInput::Field {
            field,
            reason: "is required (a SPIFFE ID such as spiffe://example.org/ns/app)",
        });
    }
    SpiffeId::parse(value).map_err(|e| InvalidInput::BadSpiffeId {
        field,
        value: echo(value),
        reason: e.to_string(),
    })
}

/// A workload ID (a registration entry's ID or a node alias): in `td`,
/// with a path, and outside the reserved space of the CA and agents.
pub fn workload_id(
    field: &'static str,
    value: &str,
    td: &TrustDomain,
) -> Result<SpiffeId, InvalidInput> {
    let id = spiffe_id_in(field, value, td)?;
    if id.path().is_empty() {
        return Err(InvalidInput::NoPath { field, value: id });
    }
    if id.is_reserved() {
        return Err(InvalidInput::ReservedId { field, value: id });
    }
    Ok(id)
}

/// Builds one selector from its wire parts.
pub fn selector(kind: &str, value: &str) -> Result<Selector, InvalidInput> {
    Selector::new(kind, value).map_err(|e| InvalidInput::BadSelector {
        kind: echo(kind),
        value: echo(value),
        reason: e.to_string(),
    })
}

/// Checks a non-empty, bounded selector list.
pub fn selectors<'a>(
    parts: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<Selector>, InvalidInput> {
    let count = parts.len();
    if count == 0 {
        return Err(InvalidInput::NoSelectors);
    }
    if count > MAX_SELECTORS {
        return Err(InvalidInput::TooMany {
            field: "selectors",
            count,
            limit: MAX_SELECTORS,
        });
    }
    let mut out: Vec<Selector> = parts
        .map(|(k, v)| selector(k, v))
        .collect::<Result<_, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// Checks DNS SANs: RFC 1123 host names (a leading `*.` wildcard label is
/// allowed), lowercased.
pub fn dns_names(names: &[String]) -> Result<Vec<String>, InvalidInput> {
    if names.len() > MAX_DNS_NAMES {
        return Err(InvalidInput::TooMany {
            field: "dns_names",
            count: names.len(),
            limit: MAX_DNS_NAMES,
        });
    }
    let mut out: Vec<String> = names
        .iter()
        .map(|n| dns_name(n))
        .collect::<Result<_, _>>()?;
    out.dedup();
    Ok(out)
}

/// Checks one DNS name.
pub fn dns_name(name: &str) -> Result<String, InvalidInput> {
    let bad = |reason| InvalidInput::BadDnsName {
        value: echo(name),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > MAX_DNS_NAME_LEN {
        return Err(bad("it is longer than 253 characters"));
    }
    let lower = name.to_ascii_lowercase();
    let rest = lower.strip_prefix("*.").unwrap_or(&lower);
    for label in rest.split('.') {
        if label.is_empty() {
            return Err(bad(
                "it has an empty label (leading, trailing or double '.')",
            ));
        }
        if label.len() > 63 {
            return Err(bad("a label is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad(
                "labels may hold only letters, digits and '-' ('*' only as the whole first label)",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    Ok(lower)
}

/// Parses a trust domain name (a bare name or a `spiffe://` URI).
pub fn trust_domain(field: &'static str, value: &str) -> Result<TrustDomain, InvalidInput> {
    let bare = value.strip_prefix("spiffe://").unwrap_or(value);
    TrustDomain::new(bare).map_err(|e| InvalidInput::BadTrustDomain {
        field,
        value: echo(value),
        reason: e.to_string(),
    })
}

/// Checks the federated trust domains of an entry (never the own one).
pub fn federates_with(
    values: &[String],
    own: &TrustDomain,
) -> Result<Vec<TrustDomain>, InvalidInput> {
    if values.len() > MAX_FEDERATES_WITH {
        return Err(InvalidInput::TooMany {
            field: "federates_with",
            count: values.len(),
            limit: MAX_FEDERATES_WITH,
        });
    }
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let td = trust_domain("federates_with", v)?;
        if &td == own {
            return Err(InvalidInput::OwnTrustDomain {
                field: "federates_with",
                value: td,
            });
        }
        out.push(td);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Checks an entry owner: empty (an operator's entry) or a short
/// lowercase path such as `k8s/prod`.
pub fn owner(field: &'static str, value: &str) -> Result<String, InvalidInput> {
    match owner_problem(value) {
        None => Ok(value.to_owned()),
        Some(reason) => Err(InvalidInput::BadOwner {
            field,
            value: echo(value),
            reason,
        }),
    }
}

/// Checks a lifetime in seconds: 0 is "the default", else `min..=max`.
pub fn ttl(
    field: &'static str,
    secs: u32,
    min: Duration,
    max: Duration,
) -> Result<Duration, InvalidInput> {
    let d = Duration::from_secs(u64::from(secs));
    if secs != 0 && (d < min || d > max) {
        return Err(InvalidInput::TtlOutOfRange {
            field,
            secs: u64::from(secs),
            min: min.as_secs(),
            max: max.as_secs(),
        });
    }
    Ok(d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_follow_rfc_1123() {
        assert_eq!(dns_name("API.example.com").unwrap(), "api.example.com");
        assert_eq!(dns_name("*.svc.local").unwrap(), "*.svc.local");
        assert_eq!(dns_name("a-1.b").unwrap(), "a-1.b");
        for bad in [
            "", ".", "a..b", "a.", "-a.b", "a-.b", "a_b", "a.*.b", "*", "é.com", "a b",
        ] {
            assert!(dns_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(dns_name(&"a".repeat(64)).is_err());
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(long.len(), 255);
        assert!(dns_name(&long).is_err());
    }

    #[test]
    fn ids_must_be_in_the_trust_domain_with_a_path() {
        let td = TrustDomain::new("example.org").unwrap();
        assert!(workload_id("spiffe_id", "spiffe://example.org/a", &td).is_ok());
        assert!(matches!(
            workload_id("spiffe_id", "spiffe://example.org", &td),
            Err(InvalidInput::NoPath { .. })
        ));
        assert!(matches!(
            workload_id("spiffe_id", "spiffe://other.org/a", &td),
            Err(InvalidInput::ForeignId { .. })
        ));
        assert!(matches!(
            workload_id("spiffe_id", "http://example.org/a", &td),
            Err(InvalidInput::BadSpiffeId { .. })
        ));
    }

    #[test]
    fn workload_ids_stay_out_of_the_reserved_space() {
        let td = TrustDomain::new("example.org").unwrap();
        for reserved in [
            "spiffe://example.org/meshid",
            "spiffe://example.org/meshid/ca",
            "spiffe://example.org/meshid/agent/join_token/0123456789abcdef",
        ] {
            let err = workload_id("spiffe_id", reserved, &td).unwrap_err();
            assert!(matches!(err, InvalidInput::ReservedId { .. }), "{reserved}");
            let msg = err.to_string();
            assert!(
                msg.starts_with("spiffe_id spiffe://example.org/meshid"),
                "{msg}"
            );
            assert!(msg.contains("reserved"), "{msg}");
        }
        assert!(workload_id("spiffe_id", "spiffe://example.org/meshidfoo", &td).is_ok());
        // A parent may well be an agent.
        assert!(spiffe_id_in("parent_id", "spiffe://example.org/meshid/agent/x", &td).is_ok());
    }

    #[test]
    fn selectors_are_required_sorted_and_deduplicated() {
        assert_eq!(
            selectors(std::iter::empty::<(&str, &str)>()),
            Err(InvalidInput::NoSelectors)
        );
        let s = selectors([("unix", "uid:2"), ("unix", "uid:1"), ("unix", "uid:2")].into_iter())
            .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].value(), "uid:1");
        assert!(selectors([("UNIX", "uid:1")].into_iter()).is_err());
    }

    #[test]
    fn ttls_are_bounded() {
        assert_eq!(
            ttl("x509_svid_ttl_seconds", 0, MIN_X509_TTL, MAX_X509_TTL).unwrap(),
            Duration::ZERO
        );
        assert!(ttl("x", 59, MIN_X509_TTL, MAX_X509_TTL).is_err());
        assert!(ttl("x", 3600, MIN_X509_TTL, MAX_X509_TTL).is_ok());
        assert!(ttl("x", u32::MAX, MIN_X509_TTL, MAX_X509_TTL).is_err());
    }

    #[test]
    fn owners_are_checked_and_named_in_the_error() {
        assert_eq!(owner("owner", "k8s/demo").unwrap(), "k8s/demo");
        assert_eq!(owner("owner", "").unwrap(), "");
        let err = owner("by_owner", "K8s/Demo").unwrap_err();
        assert!(matches!(err, InvalidInput::BadOwner { .. }));
        assert!(
            err.to_string()
                .starts_with("by_owner \"K8s/Demo\" may hold only"),
            "{err}"
        );
        assert!(owner("owner", &"a".repeat(129)).is_err());
    }

    #[test]
    fn federation_refuses_own_trust_domain() {
        let td = TrustDomain::new("example.org").unwrap();
        assert!(federates_with(&["example.org".into()], &td).is_err());
        assert_eq!(
            federates_with(&["spiffe://b.org".into(), "a.org".into()], &td)
                .unwrap()
                .len(),
            2
        );
    }
}
